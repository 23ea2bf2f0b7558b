#include "dlpack.h"

#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/DLConvertor.h>

#include <torchport/torchport.h>

namespace py = pybind11;

namespace torchport::bindings {
namespace {

constexpr const char* kCapsule = "dltensor";
constexpr const char* kUsedCapsule = "used_dltensor";
constexpr const char* kVersioned = "dltensor_versioned";
constexpr const char* kUsedVersioned = "used_dltensor_versioned";

void delete_unconsumed(PyObject* capsule) {
  // A capsule nobody consumed still owns its tensor.
  if (PyCapsule_IsValid(capsule, kCapsule)) {
    auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, kCapsule));
    if (managed && managed->deleter) managed->deleter(managed);
  }
}

std::string reason_of(py::error_already_set& e) {
  // The exception's own message, without the Python traceback what() adds.
  return py::str(e.value());
}

// Torch tensors carry lazy conjugate and negative bits that DLPack cannot
// express (it would hand over the unnegated memory), and autograd state it
// refuses; resolve them first, copying only the tensors that have such a bit.
py::object plain(const py::handle& obj, const std::string& where) {
  if (!py::hasattr(obj, "resolve_neg") || !py::hasattr(obj, "resolve_conj")) {
    return py::reinterpret_borrow<py::object>(obj);
  }
  const std::string layout = py::str(obj.attr("layout"));
  if (layout != "torch.strided") {
    throw Error(ErrorKind::BadInput, where + ": expected a dense tensor, got layout " + layout);
  }
  const std::string device = py::str(obj.attr("device").attr("type"));
  if (device != "cpu" && device != "cuda") {
    throw Error(ErrorKind::BadInput, where + ": expected a tensor on cpu or cuda, got one on " + device);
  }
  return obj.attr("detach")().attr("resolve_conj")().attr("resolve_neg")();
}

// DLPack allows negative strides (a reversed NumPy array); LibTorch does not.
// Rebase the view on its lowest address with positive strides, and return the
// dims to flip back.
std::vector<int64_t> make_strides_positive(DLTensor& t) {
  std::vector<int64_t> flipped;
  if (t.strides == nullptr) return flipped;
  const int64_t item = (static_cast<int64_t>(t.dtype.bits) * t.dtype.lanes + 7) / 8;
  int64_t shift = 0;
  bool empty = false;
  for (int d = 0; d < t.ndim; ++d) empty |= t.shape[d] == 0;
  for (int d = 0; d < t.ndim; ++d) {
    if (t.strides[d] >= 0) continue;
    if (!empty) shift += (t.shape[d] - 1) * t.strides[d] * item;
    t.strides[d] = -t.strides[d];
    flipped.push_back(d);
  }
  t.data = static_cast<char*>(t.data) + t.byte_offset + shift;
  t.byte_offset = 0;
  return flipped;
}

template <typename Managed>
at::Tensor consume(PyObject* raw, const char* name, const char* used, bool* read_only) {
  auto* managed = static_cast<Managed*>(PyCapsule_GetPointer(raw, name));
  std::vector<int64_t> flips = make_strides_positive(managed->dl_tensor);
  at::Tensor tensor;
  if constexpr (std::is_same_v<Managed, DLManagedTensorVersioned>) {
    *read_only = (managed->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0;
    tensor = at::fromDLPackVersioned(managed);
  } else {
    tensor = at::fromDLPack(managed);
  }
  // From here the tensor owns `managed`; rename the capsule so its destructor
  // does not free it a second time (the DLPack protocol's rule).
  PyCapsule_SetName(raw, used);
  PyCapsule_SetDestructor(raw, nullptr);
  return flips.empty() ? tensor : tensor.flip(flips);
}

// torch's own objects, looked up once. Kept for the life of the process on
// purpose: a static py::object would be released after the interpreter is gone.
struct Torch {
  PyObject* tensor_type;      // torch.Tensor (exactly; subclasses take the general path)
  PyObject* strided;          // torch.strided
  PyObject* to_dlpack;        // torch._C._to_dlpack: Tensor.__dlpack__ without its Python-level checks
  PyObject* from_dlpack;      // torch._C._from_dlpack: torch.utils.dlpack.from_dlpack without its checks
  PyObject* requires_grad;    // interned attribute names
  PyObject* is_cpu;
  PyObject* layout;
  PyObject* is_conj;
  PyObject* is_neg;
};

const Torch& torch_objects() {
  static const Torch* objects = [] {
    py::module_ torch = py::module_::import("torch");
    py::module_ c = py::module_::import("torch._C");
    auto keep = [](py::object o) { return o.release().ptr(); };
    return new Torch{keep(torch.attr("Tensor")),      keep(torch.attr("strided")),
                     keep(c.attr("_to_dlpack")),      keep(c.attr("_from_dlpack")),
                     keep(py::str("requires_grad")),  keep(py::str("is_cpu")),
                     keep(py::str("layout")),         keep(py::str("is_conj")),
                     keep(py::str("is_neg"))};
  }();
  return *objects;
}

bool attr_true(PyObject* obj, PyObject* name, bool call) {
  PyObject* value = call ? PyObject_CallMethodNoArgs(obj, name) : PyObject_GetAttr(obj, name);
  if (value == nullptr) {
    PyErr_Clear();
    return false;
  }
  const bool yes = value == Py_True;
  Py_DECREF(value);
  return yes;
}

// The common case, a plain CPU torch.Tensor with nothing DLPack cannot say
// (no autograd, no lazy conjugate or negative bit): exported by torch's C
// function directly, skipping Tensor.__dlpack__'s Python-level checks (which
// are these same ones) and the generic attribute lookups of the general path.
// Returns nullptr when the tensor needs the general path.
PyObject* fast_capsule(PyObject* obj) {
  const Torch& t = torch_objects();
  if (Py_TYPE(obj) != reinterpret_cast<PyTypeObject*>(t.tensor_type)) return nullptr;
  if (attr_true(obj, t.requires_grad, false) || !attr_true(obj, t.is_cpu, false)) return nullptr;
  PyObject* layout = PyObject_GetAttr(obj, t.layout);
  if (layout == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  const bool strided = layout == t.strided;
  Py_DECREF(layout);
  if (!strided || attr_true(obj, t.is_conj, true) || attr_true(obj, t.is_neg, true)) return nullptr;
  PyObject* capsule = PyObject_CallOneArg(t.to_dlpack, obj);
  if (capsule == nullptr) PyErr_Clear();
  return capsule;
}

}  // namespace

at::Tensor from_python(const py::handle& obj, const std::string& where) {
  if (PyObject* fast = fast_capsule(obj.ptr())) {
    const py::object capsule = py::reinterpret_steal<py::object>(fast);
    if (PyCapsule_IsValid(fast, kCapsule)) {
      bool read_only = false;
      try {
        return consume<DLManagedTensor>(fast, kCapsule, kUsedCapsule, &read_only);
      } catch (const std::exception& e) {
        throw Error(ErrorKind::BadInput, where + ": this tensor cannot be used by the runtime: " +
                                             std::string(e.what()).substr(0, 300));
      }
    }
  }
  if (!py::hasattr(obj, "__dlpack__")) {
    throw Error(ErrorKind::BadInput, where + ": expected a torch.Tensor or an array with __dlpack__, got " +
                                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  }
  py::object capsule;
  try {
    const py::object source = plain(obj, where);
    try {
      // DLPack 1.x can say that memory is read-only; older producers take no arguments.
      capsule = source.attr("__dlpack__")(py::arg("max_version") = py::make_tuple(1, 0));
    } catch (py::error_already_set& e) {
      if (!e.matches(PyExc_TypeError)) throw;
      capsule = source.attr("__dlpack__")();
    }
  } catch (py::error_already_set& e) {
    throw Error(ErrorKind::BadInput, where + ": cannot be passed to the runtime: " + reason_of(e));
  }
  PyObject* raw = capsule.ptr();
  bool read_only = false;
  at::Tensor tensor;
  try {
    if (PyCapsule_IsValid(raw, kVersioned)) {
      tensor = consume<DLManagedTensorVersioned>(raw, kVersioned, kUsedVersioned, &read_only);
    } else if (PyCapsule_IsValid(raw, kCapsule)) {
      tensor = consume<DLManagedTensor>(raw, kCapsule, kUsedCapsule, &read_only);
    } else {
      throw Error(ErrorKind::BadInput, where + ": __dlpack__ did not return a DLPack capsule");
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::BadInput, where + ": this array cannot be used as a tensor: " +
                                         std::string(e.what()).substr(0, 300));
  }
  // Read-only memory (np.frombuffer of bytes, a locked array): a model that
  // writes into its input must not fault on it.
  return read_only ? tensor.clone() : tensor;
}

py::object to_python(const at::Tensor& tensor) {
  DLManagedTensor* managed = at::toDLPack(tensor);
  py::capsule capsule(managed, kCapsule, &delete_unconsumed);
  PyObject* out = PyObject_CallOneArg(torch_objects().from_dlpack, capsule.ptr());
  if (out == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(out);
}

std::vector<at::Tensor> tensors_from(const Model& model, const py::sequence& items) {
  const auto& specs = model.manifest().inputs;
  const size_t n = py::len(items);
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string where =
        i < specs.size() ? "input '" + specs[i].name + "'" : "input " + std::to_string(i);
    // None leaves an optional input out (the runtime checks that it is optional).
    out.push_back(items[i].is_none() ? at::Tensor() : from_python(items[i], where));
  }
  return out;
}

}  // namespace torchport::bindings
