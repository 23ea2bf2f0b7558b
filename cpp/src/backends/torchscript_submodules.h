#pragma once
// What the divergence localiser needs from a TorchScript module: its
// submodules by qualified name, a way to call one, its own tensors, the custom
// operators its code calls, and the operators an archive needs that this
// process has not registered. Used by backends/torchscript.cpp only.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/script.h>

#include <torchport/torchport.h>

namespace torchport::detail {

/// Every submodule below `root`, depth-first in definition order.
std::vector<SubmoduleInfo> list_submodules(const torch::jit::Module& root);

/// Calls submodule `name`'s forward ("" is the root); BadOption naming it when
/// there is no such submodule or it has no forward(). `path` names the artifact.
c10::IValue call_submodule(const torch::jit::Module& root, const std::string& name,
                           std::vector<c10::IValue> args,
                           const std::map<std::string, c10::IValue>& kwargs,
                           const std::string& path);

/// Parameters and buffers of submodule `name` ("" is the root), by name
/// relative to it ("weight", "0.bias").
std::map<std::string, at::Tensor> submodule_tensors(const torch::jit::Module& root,
                                                    const std::string& name,
                                                    const std::string& path);

/// Operators the archive's serialized code calls ("ops.ns.op(...)") that no
/// library loaded in this process registers, as "ns::op", sorted. `bytes` is
/// the archive, already checked by the reader.
std::vector<std::string> unregistered_operators(std::shared_ptr<const std::string> bytes);

/// The load error for an archive whose operators are missing: each op with its
/// namespace, and the three ways to supply the library.
std::string missing_operators_message(const std::string& path, const std::vector<std::string>& ops);

}  // namespace torchport::detail
