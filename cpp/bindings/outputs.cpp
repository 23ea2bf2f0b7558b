// Structured outputs for Python: Model.run_structured returns what the eager
// model returned (tensors in tuples, named tuples, lists and dicts).

#include "outputs.h"

#include <map>
#include <string>
#include <vector>

#include <ATen/core/function_schema.h>
#include <pybind11/stl.h>

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

}  // namespace

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
