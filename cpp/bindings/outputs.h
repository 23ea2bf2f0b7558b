#pragma once
// Model.run_structured: outputs nested as the model returns them.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <pybind11/pybind11.h>

#include <torchport/torchport.h>

namespace torchport::bindings {

using InputsFn = std::function<std::vector<at::Tensor>(const Model&, const pybind11::sequence&)>;
using NamedInputsFn = std::function<std::map<std::string, at::Tensor>(const Model&, const pybind11::dict&)>;

/// OutputLayout and describe_outputs: export's view of a return value.
void register_layout(pybind11::module_& m);
/// Adds Model.run_structured (after register_model); inputs are converted as Model.run converts them.
void register_outputs(pybind11::module_& m, const InputsFn& positional, const NamedInputsFn& named);

}  // namespace torchport::bindings
