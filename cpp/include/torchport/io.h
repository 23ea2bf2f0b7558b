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

/// read_tensor_file, and for a model whose manifest has `features`, CSV rows too
/// (told apart by content): a header row naming the columns, matched by name to the
/// features, numbers parsed strictly, categories one-hot over the manifest's
/// vocabulary (unknown values all zeros). See docs/runtime.md. Throws Error (BadInput).
TensorBundle read_input_file(const std::string& path, const Manifest& manifest);

/// Writes tensors so that plain torch.load(path) reads them back: one tensor as
/// a tensor, several as a tuple. The file is replaced atomically (write_file);
/// `protect` lists the files the command reads, which the output may not be.
void write_tensor_file(const std::string& path, const std::vector<at::Tensor>& tensors,
                       const std::vector<std::string>& protect = {});

/// Writes a call's outputs nested as the model returns them (Model::run_structured)
/// so that plain torch.load(path) (weights_only) reads back that structure: a
/// tensor, tuples, lists and dicts (named tuples as plain tuples). Atomic, like write_tensor_file.
void write_outputs_file(const std::string& path, const Outputs& outputs,
                        const std::vector<std::string>& protect = {});

/// Reads a file write_outputs_file wrote (or any torch.save of tensors nested in
/// tuples, lists and dicts) as its tensors flattened depth first: the
/// manifest's output order. Executes nothing. Throws Error (BadInput).
std::vector<at::Tensor> read_outputs_file(const std::string& path);

/// The one way torchport writes a file. The bytes go to an unnamed file in the
/// destination folder (O_TMPFILE; a named temporary where that is missing),
/// flushed to disk, then put in place: with `overwrite` by rename() over the
/// old file (a symlink there is replaced, its target is left alone), without
/// it by link(), which fails if anything exists at `path`, so of two racing
/// writers one wins and the other gets BadOption. A reader, or a crash at any
/// point, sees the old file or the whole new one, and a killed writer leaves
/// no temporary file (O_TMPFILE). Permissions are 0666 less the umask.
/// Throws BadOption (exists, is protected, folder missing) or Output.
void write_file(const std::string& path, const std::string& bytes, bool overwrite,
                const std::vector<std::string>& protect = {});

/// Refuses (BadOption) an output path that is one of `protect` (the same file,
/// through any name or link), or anything there that is not a regular file (a
/// directory, a device node, a FIFO, a socket): those are never replaced.
void check_output_path(const std::string& path, const std::vector<std::string>& protect);

/// The bundle's tensors in the model's input order.
std::vector<at::Tensor> positional_inputs(const Model& model, const TensorBundle& inputs);

/// Runs a model on a bundle read from a file.
std::vector<at::Tensor> run(const Model& model, const TensorBundle& inputs);

}  // namespace torchport
