#pragma once
// The runtime's diagnostics for torchport.localize: submodules, and values of
// any TorchScript type across the boundary.

#include <pybind11/pybind11.h>

namespace torchport::bindings {

/// Adds Model.submodules/run_submodule/submodule_tensors and the Submodule
/// class to the module (after register_model).
void register_localize(pybind11::module_& m);

}  // namespace torchport::bindings
