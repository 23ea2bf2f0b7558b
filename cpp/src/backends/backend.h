#pragma once
// One artifact format per backend; Model talks to them only through this
// interface, and open_backend() in model.cpp is the single routing point.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <torchport/torchport.h>

namespace torchport::detail {

class Backend {
 public:
  virtual ~Backend() = default;
  /// "torchscript", "aoti", "executorch" or "onnx".
  virtual std::string format() const = 0;
  /// Runs the model; inputs are validated, contiguous and on the model's
  /// device. Called under c10::InferenceMode, possibly from many threads.
  virtual std::vector<at::Tensor> forward(std::vector<at::Tensor> inputs) const = 0;
  /// The contract as far as the model's own signature tells it.
  virtual Manifest signature() const = 0;

  // Submodule access, for the divergence localiser only. A format that cannot
  // reach its submodules keeps these defaults, which say so.

  /// Every submodule, depth-first in definition order.
  virtual std::vector<SubmoduleInfo> submodules() const;
  /// Calls submodule `name`'s forward ("" is the model). Called under
  /// c10::InferenceMode.
  virtual c10::IValue run_submodule(const std::string& name, std::vector<c10::IValue> args,
                                    const std::map<std::string, c10::IValue>& kwargs) const;
  /// Parameters and buffers of submodule `name` ("" is the model).
  virtual std::map<std::string, at::Tensor> submodule_tensors(const std::string& name) const;
};

/// A TorchScript archive, from the bytes of the file at `path` (already
/// checked by read_archive); `manifest`, when there is one, gives the
/// constants passed to forward() by keyword, and its optimize level "fast" runs
/// torch::jit::optimize_for_inference at load (its oneDNN constants cannot be
/// saved); `optimize_graph` off runs without the profiling executor's optimising passes;
/// `level` ("freeze" or "fast", Options::optimize) is applied at load on top of the exported one.
std::unique_ptr<Backend> open_torchscript(const std::string& path, std::shared_ptr<const std::string> bytes,
                                          bool optimize_graph, const c10::Device& device,
                                          const Manifest* manifest = nullptr, const std::string& level = "");

struct ArchiveFiles;

/// True when the records are those of a torch.export / AOTInductor package.
bool is_aoti_package(const std::vector<std::string>& records);

/// An AOTInductor package (.pt2, torch._inductor.aoti_compile_and_package),
/// from the bytes of the file at `path` (already checked by read_archive,
/// whose manifest `files` holds); backends/aoti.cpp.
std::unique_ptr<Backend> open_aoti(const std::string& path, std::shared_ptr<const std::string> bytes,
                                   const ArchiveFiles& files, const Options& options,
                                   const c10::Device& device);

/// An ExecuTorch program with torchport's tail (.pte), from the bytes of the
/// file at `path` (already split by read_archive); backends/executorch.cpp.
/// Unavailable when the runtime was built without ExecuTorch.
std::unique_ptr<Backend> open_executorch(const std::string& path, std::shared_ptr<const std::string> bytes,
                                         const Options& options, const c10::Device& device);

/// An ONNX model (.onnx) run by ONNX Runtime, loaded at run time (dlopen) from
/// Options::onnxruntime, TORCHPORT_ONNXRUNTIME, the `onnxruntime` wheel beside
/// torch, or the loader's search path; backends/onnxruntime.cpp. `manifest`,
/// when there is one, is checked against the graph's types and shapes.
/// Unavailable when no ONNX Runtime loads.
std::unique_ptr<Backend> open_onnxruntime(const std::string& path, const std::string& bytes, const Options& options,
                                          const c10::Device& device, const Manifest* manifest);

}  // namespace torchport::detail
