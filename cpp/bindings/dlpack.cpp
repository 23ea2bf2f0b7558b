#include "dlpack.h"

#include <ATen/DLConvertor.h>

#include <torchport/torchport.h>

namespace py = pybind11;

namespace torchport::bindings {
namespace {

constexpr const char* kCapsule = "dltensor";
constexpr const char* kUsedCapsule = "used_dltensor";

void delete_unconsumed(PyObject* capsule) {
  // A capsule nobody consumed still owns its tensor.
  if (PyCapsule_IsValid(capsule, kCapsule)) {
    auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, kCapsule));
    if (managed && managed->deleter) managed->deleter(managed);
  }
}

}  // namespace

at::Tensor from_python(const py::handle& obj, const std::string& where) {
  if (!py::hasattr(obj, "__dlpack__")) {
    throw Error(ErrorKind::BadInput, where + ": expected a tensor (an object with __dlpack__), got " +
                                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  }
  py::object capsule;
  try {
    capsule = obj.attr("__dlpack__")();
  } catch (py::error_already_set& e) {
    // The exception's own message, without the Python traceback what() adds.
    const std::string reason = py::str(e.value());
    throw Error(ErrorKind::BadInput, where + ": cannot be passed to the runtime: " + reason);
  }
  PyObject* raw = capsule.ptr();
  if (!PyCapsule_IsValid(raw, kCapsule)) {
    throw Error(ErrorKind::BadInput, where + ": __dlpack__ did not return a DLPack capsule");
  }
  auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(raw, kCapsule));
  // From here the tensor owns `managed`; rename the capsule so its destructor
  // does not free it a second time (the DLPack protocol's rule).
  at::Tensor tensor = at::fromDLPack(managed);
  PyCapsule_SetName(raw, kUsedCapsule);
  PyCapsule_SetDestructor(raw, nullptr);
  return tensor;
}

py::object to_python(const at::Tensor& tensor) {
  DLManagedTensor* managed = at::toDLPack(tensor);
  py::capsule capsule(managed, kCapsule, &delete_unconsumed);
  // Kept for the life of the process on purpose: a static py::object would be
  // released after the interpreter is gone.
  static auto* from_dlpack =
      new py::object(py::module_::import("torch.utils.dlpack").attr("from_dlpack"));
  return (*from_dlpack)(capsule);
}

}  // namespace torchport::bindings
