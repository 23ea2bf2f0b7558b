#pragma once
/// torchport: load a torchport artifact (TorchScript archive, AOTInductor
/// .pt2 package, ExecuTorch .pte or ONNX model, told apart by content) and run it.
///
///   auto model = torchport::Model::load("model.pt");
///   std::vector<at::Tensor> out = model.run({at::rand({4, 1, 8, 8})});
///
/// Thread safety: a loaded Model is immutable; run() is const and may be called
/// from any number of threads at once. Options::threads sets LibTorch's
/// intra-op pool, which is process-wide.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

namespace torchport {

/// The torchport version this library was built as.
const char* version();
/// The torch version this library was compiled against.
const char* torch_version();
/// True when this library runs ExecuTorch programs (.pte): its plugin (built with
/// TORCHPORT_WITH_EXECUTORCH) and the executorch libraries it needs load.
bool with_executorch();
/// The newest manifest schema this runtime reads; 2 added optional inputs,
/// dimension bounds, constants and the output structure, 3 the list with one
/// item per batch element. Export writes 3 only when a manifest uses it, else 2.
constexpr int kManifestSchema = 3;

/// What went wrong, so callers can react without parsing messages.
enum class ErrorKind {
  NotFound,     ///< the artifact does not exist
  BadArtifact,  ///< the artifact cannot be read, or its manifest is invalid
  BadInput,     ///< inputs (or an input file) do not match the model's contract
  BadOption,    ///< an option or argument is invalid
  Runtime,      ///< the model itself failed while running
  Export,       ///< a model could not be exported (Python side)
  Data,         ///< a data set cannot be read (Python side)
  Checkpoint,   ///< a checkpoint is missing, unreadable or incompatible (Python side)
  Output,       ///< an output file could not be written
  Unavailable,  ///< the runtime (the Python extension or the binary) is not installed
};

/// Every error kind, in the order of the exit-code table.
const std::vector<ErrorKind>& error_kinds();
/// Lower-case name of an error kind: "not_found", "bad_artifact", ...
const char* to_string(ErrorKind kind);
/// The exit code of a command that stops on this kind of error: the one table
/// for torchport-run and the torchport command (docs/runtime.md).
int exit_code(ErrorKind kind);
/// Exit code of a command whose outputs did not match (selfcheck, verify).
constexpr int kExitMismatch = 1;
/// Exit code for a bad command line (same as ErrorKind::BadOption).
constexpr int kExitUsage = 2;

/// The one exception type the runtime throws; LibTorch errors are caught at the
/// library boundary and rethrown as this.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message);
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

/// How an image model takes pictures (an input's "image" field): 8-bit RGB as an
/// application holds them, uint8 [batch, H, W, 3] of any H and W, and what the graph
/// does with them, in this order: HWC -> CHW, a bilinear resize to `size`
/// (align_corners false, no antialias), division by 255, then (x - mean) / std per
/// channel. The runtime checks the input against it; the graph does the work.
struct ImageSpec {
  std::string layout = "HWC";       ///< the input's layout: "HWC" (height, width, channels)
  std::string channels = "RGB";     ///< channel order: "RGB"
  int range_min = 0, range_max = 255;  ///< the pixel values the input holds (uint8: 0 and 255)
  std::vector<int64_t> size;        ///< [h, w] the graph resizes every picture to
  std::string resize = "bilinear";  ///< "bilinear" (align_corners false, no antialias)
  std::vector<double> mean, std;    ///< per channel, on the [0, 1] scale after division by 255
};

/// One named tensor of the I/O contract. A dimension of -1 is dynamic; a
/// dynamic dimension may carry a name ("batch"), and every dimension that
/// shares a name must have the same size across the inputs of one call.
/// dtype and shape are empty when the contract was derived from a plain
/// TorchScript file that does not say them.
struct TensorSpec {
  std::string name;
  std::optional<c10::ScalarType> dtype;
  std::optional<std::vector<int64_t>> shape;
  std::vector<std::string> dim_names;  ///< per dim, "" when unnamed; empty when none are named
  /// An input that may be left out (an undefined tensor): forward() gets None.
  bool optional = false;
  /// Output dims whose size depends on the input values (detections kept), not on their shapes.
  std::vector<int64_t> data_dependent_dims;
  /// An input that takes 8-bit pictures: how the graph reads them; none for other inputs.
  std::optional<ImageSpec> image;
};

/// Inclusive bounds of a named dynamic dimension ("seq" in 1..512).
struct DimBounds {
  int64_t min = 0;
  int64_t max = 0;
};

/// One named input column of a tabular model, in the order its input vector holds
/// them: "numeric" takes one float; "categorical" takes one float per vocabulary
/// entry (one-hot; a value outside the vocabulary is all zeros).
struct FeatureSpec {
  std::string name;
  std::string type = "numeric";         ///< "numeric" or "categorical"
  std::vector<std::string> vocabulary;  ///< categorical only: the values seen in training, in one-hot order

  /// How many floats of the input vector this feature takes.
  size_t width() const { return type == "categorical" ? vocabulary.size() : 1; }
};

/// The artifact's manifest (torchport/manifest.json), or the contract derived
/// from forward()'s schema when the artifact has none.
struct Manifest {
  int schema = 0;  ///< 0 when derived, not read
  std::string name;
  std::string torchport_version;
  std::string torch_version;
  std::string export_method;  ///< "script" or "trace" (TorchScript), "torch.export" (.pt2, .pte), "torch.onnx.export" (.onnx)
  std::string created;        ///< ISO 8601, UTC
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  std::string metadata_json = "{}";  ///< free user metadata, as JSON text
  bool has_golden = false;
  std::string checksum;  ///< "xxh3-128:..." (or older "sha256:...") of the model payload, verified at load; "" if none
  std::string format;    ///< "torchscript", "aoti", "executorch" or "onnx"; "" in manifests older than formats
  /// How far this format's outputs may be from the eager (golden) outputs, as
  /// allclose's atol and rtol (finite, >= 0); 0 and 0 (bit-exact) unless the manifest says.
  double atol = 0.0, rtol = 0.0;
  /// Bounds of named dynamic dimensions, checked on every call before the model runs.
  std::map<std::string, DimBounds> dim_bounds;
  /// forward()'s non-tensor arguments (int, float, bool, str, None) with the
  /// value used at export, as a JSON object; passed by keyword on every call.
  std::string constants_json = "{}";
  /// How the flat outputs nest as the model returns them (docs/artifact.md,
  /// "structure"), as JSON; "" for a tensor or a flat tuple.
  std::string structure_json;
  /// Class names of a classifier, in output order; empty when the manifest has none.
  std::vector<std::string> labels;
  /// A tabular model's input columns, in input-vector order; empty when the input is not named columns.
  std::vector<FeatureSpec> features;
  /// The TorchScript optimisation level export applied: "none", "freeze" or
  /// "fast"; "" in manifests older than levels (the same as "none").
  std::string optimize;

  /// True when read from the artifact, false when derived from forward().
  bool from_artifact() const { return schema > 0; }
  /// The names of a call's `count` flat outputs: the outputs' names, with the
  /// names of a per-batch list's item repeated for each batch element ("*" ->
  /// "0", "1", ...). Throws Runtime when `count` does not fit the structure.
  std::vector<std::string> output_names_for(size_t count) const;
  /// The manifest as JSON text (the same schema the file uses).
  std::string to_json(int indent = 2) const;
  /// Parses and validates manifest JSON (the one definition of the schema);
  /// `where` names the source in errors. Throws Error(BadArtifact).
  static Manifest from_json(const std::string& text, const std::string& where = "manifest");
};

/// The manifest's dtype names, in table order ("float32", "int64", ...).
std::vector<std::string> supported_dtypes();

/// The most intra-op threads Options::threads accepts: 4 per core, at least 256.
int max_threads();
/// The most warm-up runs Options::warmup_runs accepts.
constexpr int kMaxWarmupRuns = 10'000;
/// The most concurrent runners Options::concurrency accepts.
constexpr int kMaxConcurrency = 256;

/// How to load a model.
struct Options {
  std::string device = "cpu";  ///< "cpu" ("cpu:0"), "cuda", "cuda:1", ...
  int threads = 0;             ///< intra-op threads (process-wide); 0 keeps LibTorch's default; at most max_threads()
  int warmup_runs = 0;         ///< runs on the golden (or synthetic) inputs at load, each also on their first row when the batch dim allows; at most kMaxWarmupRuns
  bool check_nan = false;      ///< reject inputs holding NaN or Inf
  bool verify_checksum = true; ///< check the manifest's payload checksum at load
  /// Calls that may run at once without waiting for each other, 1 to
  /// kMaxConcurrency. An AOTInductor package (.pt2) gets this many runners
  /// (each with its own activation buffers; weights are shared); a further
  /// concurrent call waits for a free one. TorchScript needs no pool and ignores it.
  int concurrency = 4;
  /// TorchScript only: run graphs through the profiling executor's optimising
  /// passes (LibTorch's default). false runs LibTorch's unoptimised plan from the
  /// first call: no profiling run, no optimisation during the first two calls,
  /// so the first call costs about what later ones do (docs/runtime.md, "Speed").
  bool optimize_graph = true;
  /// Shared libraries of custom operators (TORCH_LIBRARY), dlopen'ed with
  /// RTLD_NOW | RTLD_GLOBAL before the model loads. Process-wide; never unloaded.
  std::vector<std::string> libraries;
  /// TorchScript only: an optimisation level applied at load on top of the one
  /// export applied (Manifest::optimize): "" keeps the exported level; "freeze"
  /// runs torch::jit::freeze, "fast" also optimize_for_inference. Not bit-exact
  /// in general: outputs may leave the manifest's tolerance (torchport tune
  /// picks a level only where they stay within the tolerance it was given).
  std::string optimize;
  /// A profile written by `torchport tune` (torchport/profile.h): its settings
  /// apply where these Options are left at their defaults, and it may pick a
  /// sibling file of another format. Refused (BadArtifact) when it was tuned
  /// for another artifact. "" for none; never picked up implicitly.
  std::string profile;
  /// ONNX models only: the libonnxruntime.so to load (once per process). ""
  /// tries TORCHPORT_ONNXRUNTIME, then the `onnxruntime` wheel installed beside
  /// torch (onnxruntime/capi/), then the dynamic loader's search path.
  std::string onnxruntime;
  /// ONNX models only: ONNX Runtime's graph optimisation level, "all" (also
  /// ""; its default, with the NCHWc layout for convolutions), "extended",
  /// "basic" or "none".
  std::string onnx_optimization;
};

/// One submodule of a loaded model, for diagnostics (the divergence localiser).
struct SubmoduleInfo {
  std::string name;      ///< qualified name: "features.3"
  std::string type;      ///< the class name the artifact records: "BatchNorm2d"
  bool callable = false; ///< has a forward() (a traced model keeps it only for what the trace called)
  /// Operators outside aten:: and prim:: that its forward() calls, callees
  /// included: "tp_test::softsign".
  std::vector<std::string> custom_ops;
};

/// Checks options as Model::load does (threads, warm-up runs, concurrency, device); throws
/// BadOption naming the option.
void check_options(const Options& options);

/// Example inputs and the eager model's outputs on them, stored at export.
struct Golden {
  std::vector<at::Tensor> inputs;
  std::vector<at::Tensor> outputs;
};

/// A call's outputs with their names, and nested as the model returns them.
struct Outputs {
  std::vector<std::string> names;  ///< one per tensor: "logits", "hidden_states.0", "output_1.boxes" (Manifest::output_names_for)
  std::vector<at::Tensor> tensors; ///< in manifest order, as run() returns them
  /// The same tensors in the model's structure: a tensor, or tuples (named
  /// tuples keep their field names), lists and string-keyed dicts of them.
  c10::IValue structure;
};

namespace detail {
struct ModelState;
}

/// A loaded artifact. Cheap to copy (copies share the loaded model).
class Model {
 public:
  /// Loads an artifact; throws Error (NotFound, BadArtifact, BadOption).
  static Model load(const std::string& path, const Options& options = {});
  /// Loads an artifact held in memory (the bytes of a file); `name` stands for
  /// its path in errors. The same checks as load().
  static Model load_from_memory(std::string bytes, const std::string& name, const Options& options = {});

  const Manifest& manifest() const;
  const Options& options() const;
  const std::string& path() const;
  /// The artifact format that loaded it: "torchscript", "aoti", "executorch" or "onnx".
  std::string format() const;
  /// Milliseconds spent in the warm-up runs at load (0 without warm-up).
  double warmup_ms() const;

  /// Runs the model on inputs in manifest order. Returns the outputs in
  /// manifest order; none shares memory with the model (an output that would
  /// is copied). Safe to call from several threads at once.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) const;
  /// Runs the model on inputs given by name; unknown or missing names are a
  /// BadInput error that lists them. (A separate name, so that run({a, b})
  /// never reads as a map.)
  std::vector<at::Tensor> run_named(const std::map<std::string, at::Tensor>& inputs) const;
  /// Runs the model like run() and returns the outputs with their names and
  /// nested as the exported model returned them. An optional input may be an
  /// undefined tensor (left out).
  Outputs run_structured(const std::vector<at::Tensor>& inputs) const;
  /// The flat outputs of run() put back into the manifest's structure.
  Outputs structure_outputs(std::vector<at::Tensor> outputs) const;

  /// Puts inputs given by name into manifest order; unknown or missing names
  /// are a BadInput error that lists them.
  std::vector<at::Tensor> order_inputs(const std::map<std::string, at::Tensor>& inputs) const;

  /// Copies of the golden examples stored at export; throws BadArtifact if there are none.
  Golden golden() const;
  /// Inputs to exercise the model with, on its device: the golden ones, else
  /// synthetic ones built from the manifest (dynamic dimensions set to 1).
  std::vector<at::Tensor> example_inputs() const;

  /// The model's submodules, depth-first in definition order (the model itself
  /// is not listed).
  std::vector<SubmoduleInfo> submodules() const;
  /// Runs submodule `name`'s forward() ("" is the model itself) on `args` and
  /// `kwargs` as given, under InferenceMode, without the input contract: a
  /// diagnostic for the divergence localiser, not a serving path. Throws
  /// BadOption naming the submodule when it does not exist or has no forward().
  c10::IValue run_submodule(const std::string& name, const std::vector<c10::IValue>& args,
                            const std::map<std::string, c10::IValue>& kwargs = {}) const;
  /// The parameters and buffers of submodule `name` ("" is the model), by name
  /// relative to it ("weight", "0.bias").
  std::map<std::string, at::Tensor> submodule_tensors(const std::string& name) const;

 private:
  explicit Model(std::shared_ptr<const detail::ModelState> state);
  static Model load_bytes(const std::string& path, std::shared_ptr<const std::string> bytes,
                          const Options& options);
  std::shared_ptr<const detail::ModelState> state_;
};

}  // namespace torchport
