// Model's submodule access, used by the divergence localiser: listing, calling
// one submodule on the inputs eager recorded, and reading its tensors.

#include <c10/core/InferenceMode.h>

#include "detail.h"

namespace torchport {
namespace detail {

// Defaults for a format that cannot reach its submodules.
std::vector<SubmoduleInfo> Backend::submodules() const { return {}; }

c10::IValue Backend::run_submodule(const std::string& name, std::vector<c10::IValue>,
                                   const std::map<std::string, c10::IValue>&) const {
  throw Error(ErrorKind::BadOption, "submodule '" + name + "': the " + format() +
                                        " backend cannot run submodules on their own");
}

std::map<std::string, at::Tensor> Backend::submodule_tensors(const std::string& name) const {
  throw Error(ErrorKind::BadOption, "submodule '" + name + "': the " + format() +
                                        " backend cannot read submodule tensors");
}

}  // namespace detail

std::vector<SubmoduleInfo> Model::submodules() const { return state_->backend->submodules(); }

c10::IValue Model::run_submodule(const std::string& name, const std::vector<c10::IValue>& args,
                                 const std::map<std::string, c10::IValue>& kwargs) const {
  c10::InferenceMode guard;
  return state_->backend->run_submodule(name, args, kwargs);
}

std::map<std::string, at::Tensor> Model::submodule_tensors(const std::string& name) const {
  return state_->backend->submodule_tensors(name);
}

}  // namespace torchport
