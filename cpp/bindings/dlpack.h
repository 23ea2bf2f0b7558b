#pragma once
// Tensors cross the Python boundary through DLPack capsules: zero-copy, and no
// link to libtorch_python (whose pybind11 may not match ours).

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <pybind11/pybind11.h>

namespace torchport {
class Model;
}

namespace torchport::bindings {

/// Any object with __dlpack__ (a torch tensor, a NumPy array) to an at::Tensor
/// sharing its memory; `where` names it in errors ("input 0").
at::Tensor from_python(const pybind11::handle& obj, const std::string& where);

/// An at::Tensor to a torch.Tensor sharing its memory.
pybind11::object to_python(const at::Tensor& tensor);

/// A call's positional inputs as tensors in input order, errors naming each
/// input as the model calls it; None leaves an (optional) input out.
std::vector<at::Tensor> tensors_from(const Model& model, const pybind11::sequence& items);

}  // namespace torchport::bindings
