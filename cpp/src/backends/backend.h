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

struct ArchiveFiles;

/// What the routing point hands every backend factory: the checked artifact
/// and the load's options. One signature for all formats, so that a new format
/// is one factory and one row of open_backend's table.
struct OpenRequest {
  const std::string& path;                   ///< the artifact, as the caller named it (for messages)
  std::shared_ptr<const std::string> bytes;  ///< its bytes, already checked by read_archive
  const ArchiveFiles& files;                 ///< what read_archive found in them: format, manifest, golden file
  const Manifest* manifest;                  ///< the parsed manifest of `files`; nullptr when there is none
  const Options& options;                    ///< the load's options, as the caller gave them
  const c10::Device& device;                 ///< Options::device, parsed
};

/// The signature of every open_* factory below.
using OpenBackend = std::unique_ptr<Backend> (*)(const OpenRequest& request);

/// A TorchScript archive (.pt); backends/torchscript.cpp. The manifest, when
/// there is one, gives the constants passed to forward() by keyword, and its
/// optimize level "fast" runs torch::jit::optimize_for_inference at load (its
/// oneDNN constants cannot be saved); Options::optimize_graph off runs without
/// the profiling executor's optimising passes; Options::optimize ("freeze" or
/// "fast") is applied at load on top of the exported level.
std::unique_ptr<Backend> open_torchscript(const OpenRequest& request);

/// True when the records are those of a torch.export / AOTInductor package.
bool is_aoti_package(const std::vector<std::string>& records);

/// An AOTInductor package (.pt2, torch._inductor.aoti_compile_and_package);
/// backends/aoti.cpp.
std::unique_ptr<Backend> open_aoti(const OpenRequest& request);

/// An ExecuTorch program with torchport's tail (.pte), on the CPU;
/// backends/executorch.cpp. Unavailable when the runtime was built without
/// ExecuTorch.
std::unique_ptr<Backend> open_executorch(const OpenRequest& request);

/// An ONNX model (.onnx) run by ONNX Runtime, loaded at run time (dlopen) from
/// Options::onnxruntime, TORCHPORT_ONNXRUNTIME, the `onnxruntime` wheel beside
/// torch, or the loader's search path, on the CPU; backends/onnxruntime.cpp.
/// The manifest, when there is one, is checked against the graph's types and
/// shapes. Unavailable when no ONNX Runtime loads.
std::unique_ptr<Backend> open_onnxruntime(const OpenRequest& request);

}  // namespace torchport::detail
