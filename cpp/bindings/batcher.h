#pragma once
// torchport::Batcher for Python: concurrent threads submit single requests.

#include <pybind11/pybind11.h>

namespace torchport::bindings {

/// Adds the Batcher and BatchFuture classes to the module (after register_model).
void register_batcher(pybind11::module_& m);

}  // namespace torchport::bindings
