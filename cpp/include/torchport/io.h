#pragma once
/// Tensor files for the runtime's command line and for embedding applications:
/// the files torch.save writes, read without executing any code.

#include <map>
#include <string>
#include <vector>

#include <torchport/torchport.h>

namespace torchport {

/// The tensors an input file holds: in order, or by input name.
struct TensorBundle {
  std::vector<at::Tensor> positional;
  std::map<std::string, at::Tensor> named;
  bool by_name = false;
};

/// Reads a file written by torch.save holding a tensor, a list or tuple of
/// tensors, or a dict of tensors by input name. Only tensors and containers of
/// them are accepted: nothing in the file is executed (the equivalent of
/// torch.load(weights_only=True)). Throws Error (BadInput).
TensorBundle read_tensor_file(const std::string& path);

/// Writes tensors so that plain torch.load(path) reads them back: one tensor as
/// a tensor, several as a tuple. The file is replaced atomically.
void write_tensor_file(const std::string& path, const std::vector<at::Tensor>& tensors);

/// The bundle's tensors in the model's input order.
std::vector<at::Tensor> positional_inputs(const Model& model, const TensorBundle& inputs);

/// Runs a model on a bundle read from a file.
std::vector<at::Tensor> run(const Model& model, const TensorBundle& inputs);

}  // namespace torchport
