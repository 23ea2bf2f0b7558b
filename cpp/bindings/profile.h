#pragma once
// torchport::Options (read-only, what a loaded Model runs with) and
// torchport::Profile (torchport tune's profile format) for Python.

#include <pybind11/pybind11.h>

namespace torchport::bindings {

/// Adds the Options class (before register_model, whose Model.options returns one).
void register_options(pybind11::module_& m);
/// Adds the Profile class.
void register_profile(pybind11::module_& m);

}  // namespace torchport::bindings
