// Model's submodule access, used by the divergence localiser: listing, calling
// one submodule on the inputs eager recorded, and reading its tensors.

#include <c10/core/InferenceMode.h>

#include <torchport/io.h>
#include <torchport/tools.h>

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

void run_submodule_file(const Model& model, const std::string& name, const std::string& input,
                        const std::string& output) {
  const TensorBundle bundle = read_tensor_file(input);
  const c10::Device device(model.options().device);
  std::vector<c10::IValue> args;
  std::map<std::string, c10::IValue> kwargs;
  for (const auto& t : bundle.positional) args.emplace_back(t.to(device));
  for (const auto& [key, t] : bundle.named) kwargs[key] = t.to(device);
  // Refused before running: the output may not replace what this command reads.
  check_output_path(output, {model.path(), input});
  const c10::IValue result = model.run_submodule(name, args, kwargs);
  write_tensor_file(output, flatten_tensors(result, "submodule '" + name + "'"), {model.path(), input});
}

}  // namespace torchport
