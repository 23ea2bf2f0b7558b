// Bindings for the divergence localiser (python/torchport/localizer.py): a
// model's submodules, and the values they take and return across the
// boundary (tensors, None, bools, numbers, strings, and tuples, lists and dicts
// of them). Its comparison is compare_outputs, bound in module.cpp.

#include "localize.h"

#include <optional>

#include <pybind11/stl.h>

#include <torchport/tools.h>
#include <torchport/torchport.h>

#include "dlpack.h"

namespace py = pybind11;

namespace torchport::bindings {
namespace {

std::string type_of(const py::handle& obj) {
  return py::str(py::type::of(obj).attr("__name__")).cast<std::string>();
}

c10::IValue to_ivalue(const py::handle& obj, const std::string& where);

// A c10::List<T> of the values when each one is a T (`is`), else nothing.
template <typename T>
std::optional<c10::IValue> typed_list(const std::vector<c10::IValue>& values, bool (c10::IValue::*is)() const) {
  if (!std::all_of(values.begin(), values.end(), [&](const c10::IValue& v) { return (v.*is)(); })) {
    return std::nullopt;
  }
  c10::List<T> list;
  for (const auto& v : values) list.push_back(v.to<T>());
  return c10::IValue(std::move(list));
}

// TorchScript lists are typed: tensors, ints, floats or bools, all alike.
c10::IValue list_to_ivalue(const py::sequence& items, const std::string& where) {
  std::vector<c10::IValue> values;
  for (size_t i = 0; i < items.size(); ++i) {
    values.push_back(to_ivalue(items[i], where + "[" + std::to_string(i) + "]"));
  }
  for (auto list : {typed_list<at::Tensor>(values, &c10::IValue::isTensor),
                    typed_list<int64_t>(values, &c10::IValue::isInt),
                    typed_list<double>(values, &c10::IValue::isDouble),
                    typed_list<bool>(values, &c10::IValue::isBool)}) {
    if (list) return *list;
  }
  throw Error(ErrorKind::BadInput,
              where + ": a list must hold only tensors, only ints, only floats or only bools");
}

c10::IValue to_ivalue(const py::handle& obj, const std::string& where) {
  if (obj.is_none()) return c10::IValue();
  if (py::isinstance<py::bool_>(obj)) return obj.cast<bool>();
  if (py::isinstance<py::int_>(obj)) return obj.cast<int64_t>();
  if (py::isinstance<py::float_>(obj)) return obj.cast<double>();
  if (py::isinstance<py::str>(obj)) return obj.cast<std::string>();
  if (py::isinstance<py::tuple>(obj)) {
    std::vector<c10::IValue> items;
    const auto tuple = obj.cast<py::tuple>();
    for (size_t i = 0; i < tuple.size(); ++i) {
      items.push_back(to_ivalue(tuple[i], where + "[" + std::to_string(i) + "]"));
    }
    return c10::ivalue::Tuple::create(std::move(items));
  }
  if (py::isinstance<py::list>(obj)) return list_to_ivalue(obj.cast<py::sequence>(), where);
  if (py::hasattr(obj, "__dlpack__")) return from_python(obj, where);
  throw Error(ErrorKind::BadInput, where + ": expected a tensor, None, bool, int, float, str, tuple "
                                           "or list, got " + type_of(obj));
}

py::object to_py(const c10::IValue& v, const std::string& where) {
  if (v.isTensor()) return to_python(v.toTensor());
  if (v.isNone()) return py::none();
  if (v.isBool()) return py::bool_(v.toBool());
  if (v.isInt()) return py::int_(v.toInt());
  if (v.isDouble()) return py::float_(v.toDouble());
  if (v.isString()) return py::str(v.toStringRef());
  if (v.isTuple()) {
    const auto& elements = v.toTupleRef().elements();
    py::tuple out(elements.size());
    for (size_t i = 0; i < elements.size(); ++i) out[i] = to_py(elements[i], where);
    return out;
  }
  if (v.isList()) {
    py::list out;
    for (const auto& item : v.toListRef()) out.append(to_py(item, where));
    return out;
  }
  if (v.isGenericDict()) {
    py::dict out;
    for (const auto& item : v.toGenericDict()) out[to_py(item.key(), where)] = to_py(item.value(), where);
    return out;
  }
  throw Error(ErrorKind::Runtime, where + " returned a " + v.tagKind() +
                                      ", which torchport cannot pass to Python");
}

}  // namespace

void register_localize(py::module_& m) {
  py::class_<SubmoduleInfo>(m, "Submodule", "One submodule of a loaded model (Model.submodules()).")
      .def_readonly("name", &SubmoduleInfo::name, "Qualified name: 'features.3'.")
      .def_readonly("type", &SubmoduleInfo::type, "Class name the artifact records: 'BatchNorm2d'.")
      .def_readonly("callable", &SubmoduleInfo::callable, "Whether it has a forward() to call.")
      .def_readonly("custom_ops", &SubmoduleInfo::custom_ops,
                    "Operators outside aten:: and prim:: its forward() calls: ['tp_test::softsign'].")
      .def("__repr__", [](const SubmoduleInfo& s) { return "<Submodule " + s.name + " (" + s.type + ")>"; });

  auto model = py::reinterpret_borrow<py::class_<Model>>(m.attr("Model"));
  model
      .def(
          "submodules", [](const Model& self) { return self.submodules(); },
          "Every submodule, depth-first in definition order.\n\n    >>> [s.name for s in m.submodules()]")
      .def(
          "run_submodule",
          [](const Model& self, const std::string& name, const py::sequence& args, const py::object& kwargs) {
            const std::string who = "submodule '" + name + "'";
            std::vector<c10::IValue> values;
            for (size_t i = 0; i < args.size(); ++i) {
              values.push_back(to_ivalue(args[i], who + " argument " + std::to_string(i)));
            }
            std::map<std::string, c10::IValue> named;
            if (!kwargs.is_none()) {
              for (const auto& [key, value] : kwargs.cast<py::dict>()) {
                const std::string k = py::str(key);
                named[k] = to_ivalue(value, who + " argument '" + k + "'");
              }
            }
            c10::IValue result;
            {
              py::gil_scoped_release release;
              result = self.run_submodule(name, values, named);
            }
            return to_py(result, who);
          },
          py::arg("name"), py::arg("args"), py::kw_only(), py::arg("kwargs") = py::none(),
          "Runs one submodule's forward() ('' is the model) on the arguments as given; returns its "
          "result as forward() does.\n\n    >>> m.run_submodule('features.3', [x])")
      .def(
          "submodule_tensors",
          [](const Model& self, const std::string& name) {
            py::dict out;
            for (const auto& [key, tensor] : self.submodule_tensors(name)) out[py::str(key)] = to_python(tensor);
            return out;
          },
          py::arg("name"), "Parameters and buffers of a submodule, by name relative to it.");
}

}  // namespace torchport::bindings
