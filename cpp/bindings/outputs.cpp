// Structured outputs for Python: Model.run_structured returns what the eager
// model returned (tensors in tuples, named tuples, lists and dicts).

#include "outputs.h"

#include <map>
#include <string>
#include <vector>

#include <ATen/core/function_schema.h>
#include <pybind11/stl.h>

#include <torchport/tools.h>
#include <torchport/torchport.h>

#include "dlpack.h"

namespace py = pybind11;

namespace torchport::bindings {
namespace {

// Named tuples come back as collections.namedtuple types of the same name and
// fields (a data file names them; it never imports them).
py::object named_tuple_type(const std::string& name, const std::vector<std::string>& fields) {
  static auto* types = new std::map<std::string, py::object>();
  std::string key = name;
  for (const auto& f : fields) key += "\n" + f;
  auto it = types->find(key);
  if (it != types->end()) return it->second;
  py::object type = py::module_::import("collections").attr("namedtuple")(name, fields);
  return types->emplace(key, type).first->second;
}

py::object structure_to_py(const c10::IValue& v) {
  if (v.isTensor()) return to_python(v.toTensor());
  if (v.isTuple()) {
    const auto& tuple = v.toTupleRef();
    py::list items;
    for (const auto& e : tuple.elements()) items.append(structure_to_py(e));
    const auto type = tuple.type();
    if (type && type->schema() && type->name()) {
      std::vector<std::string> fields;
      for (const auto& arg : type->schema()->arguments()) fields.push_back(arg.name());
      return named_tuple_type(type->name()->name(), fields)(*items);
    }
    return py::tuple(items);
  }
  if (v.isList()) {
    py::list out;
    for (const auto& item : v.toListRef()) out.append(structure_to_py(item));
    return out;
  }
  if (v.isGenericDict()) {
    py::dict out;
    for (const auto& item : v.toGenericDict()) out[py::str(item.key().toStringRef())] = structure_to_py(item.value());
    return out;
  }
  return py::none();
}

// A model's return value as describe_outputs takes it. Only conversion here:
// what may be carried, the order and the names are decided in C++.
ValueTree to_tree(const py::handle& v, int depth) {
  static auto* tensor = new py::object(py::module_::import("torch").attr("Tensor"));
  static auto* mapping = new py::object(py::module_::import("collections.abc").attr("Mapping"));
  static auto* dataclasses = new py::object(py::module_::import("dataclasses"));
  ValueTree node;
  const py::handle type = py::type::handle_of(v);
  if (depth > kMaxOutputDepth + 1) {  // describe_outputs refuses it one level above
    node.kind = "value nested too deep";
  } else if (py::isinstance(v, *tensor)) {
    node.kind = "tensor";
    node.tensor = from_python(v, "output");
  } else if (py::isinstance<py::tuple>(v) && py::hasattr(type, "_fields")) {  // a named tuple
    node.kind = "tuple";
    node.type_name = py::str(type.attr("__name__"));
    for (const auto& f : type.attr("_fields")) node.keys.push_back(py::str(f));
    for (const auto& item : v) node.items.push_back(to_tree(item, depth + 1));
  } else if (py::isinstance<py::tuple>(v) || py::isinstance<py::list>(v)) {
    node.kind = py::isinstance<py::tuple>(v) ? "tuple" : "list";
    for (const auto& item : v) node.items.push_back(to_tree(item, depth + 1));
  } else if (py::isinstance(v, *mapping) ||
             (dataclasses->attr("is_dataclass")(v).cast<bool>() && !py::isinstance<py::type>(v))) {
    node.kind = "dict";
    // A ModelOutput is both; it lists its non-None fields as its items, and a
    // dataclass is taken the same way.
    std::vector<std::pair<py::object, py::object>> items;
    if (py::isinstance(v, *mapping)) {
      for (const auto& kv : v.attr("items")()) items.emplace_back(kv[py::int_(0)], kv[py::int_(1)]);
    } else {
      for (const auto& f : dataclasses->attr("fields")(v)) {
        py::object value = v.attr(f.attr("name"));
        if (!value.is_none()) items.emplace_back(f.attr("name"), value);
      }
    }
    const std::string cls = py::str(type.attr("__name__"));
    if (!(type.is(py::type::of(py::dict())) || cls == "OrderedDict")) node.type_name = cls;
    for (const auto& [key, value] : items) {
      if (py::isinstance<py::str>(key)) {
        node.keys.push_back(key.cast<std::string>());
      } else {
        node.keys.emplace_back();
        node.non_string_keys.push_back(py::repr(key));
      }
      node.items.push_back(to_tree(value, depth + 1));
    }
  } else {
    node.kind = v.is_none() ? "None" : std::string(py::str(type.attr("__name__")));
  }
  return node;
}

}  // namespace

void register_layout(py::module_& m) {
  py::class_<OutputLayout>(m, "OutputLayout", R"doc(
How a model's return value maps onto the manifest's flat, named outputs
(describe_outputs).

    >>> layout = describe_outputs(model(x))
    >>> layout.names, layout.structure_json
)doc")
      .def_property_readonly(
          "tensors",
          [](const OutputLayout& l) {
            py::list out;
            for (const auto& t : l.tensors) out.append(to_python(t));
            return out;
          },
          "Every tensor, depth first: what the runtime's run() returns.")
      .def_readonly("names", &OutputLayout::names, "The manifest's output names; '*' stands for a batch position.")
      .def_readonly("specs", &OutputLayout::specs, "For each tensor, the index of its name.")
      .def_readonly("structure_json", &OutputLayout::structure_json, "The manifest's structure ('' if flat).")
      .def_readonly("schema", &OutputLayout::schema, "The oldest manifest schema that carries the structure.")
      .def("specs_for", &OutputLayout::specs_for, py::arg("count"),
           "For each of a call's `count` flat outputs, the index of its name.\n\n"
           "    >>> layout.specs_for(9)");
  m.def(
      "describe_outputs",
      [](const py::object& value, int64_t batch, const py::object& at_other_batch, int64_t other_batch) {
        const ValueTree tree = to_tree(value, 0);
        if (at_other_batch.is_none()) return describe_outputs(tree, batch);
        const ValueTree other = to_tree(at_other_batch, 0);
        return describe_outputs(tree, batch, &other, other_batch);
      },
      py::arg("value"), py::kw_only(), py::arg("batch") = -1, py::arg("at_other_batch") = py::none(),
      py::arg("other_batch") = -1,
      "How a return value maps onto the manifest's outputs (the runtime's one rule); a list\n"
      "as long as `batch` here and `other_batch` in `at_other_batch` becomes one item per\n"
      "batch element. Raises BadOptionError naming what cannot be carried.\n\n"
      "    >>> describe_outputs(model(x), batch=2, at_other_batch=model(x2), other_batch=4).names");
}

void register_outputs(py::module_& m, const InputsFn& positional, const NamedInputsFn& named) {
  auto model = py::reinterpret_borrow<py::class_<Model>>(m.attr("Model"));
  model.def(
      "run_structured",
      [positional, named](const Model& self, const py::object& inputs) {
        std::vector<at::Tensor> tensors = py::isinstance<py::dict>(inputs)
                                              ? self.order_inputs(named(self, inputs.cast<py::dict>()))
                                              : positional(self, inputs.cast<py::sequence>());
        Outputs out;
        {
          py::gil_scoped_release release;
          out = self.run_structured(tensors);
        }
        return structure_to_py(out.structure);
      },
      py::arg("inputs"),
      "Runs the model (inputs in manifest order, or a dict by input name; None leaves an\n"
      "optional input out) and returns the outputs nested as the exported model returned them.\n\n"
      "    >>> m.run_structured({'pixels': x})['out']");
}

}  // namespace torchport::bindings
