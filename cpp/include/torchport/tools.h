#pragma once
/// Checks and measurements built on a loaded Model: comparison against golden
/// outputs and latency figures. The torchport-run binary and the Python module
/// both call these.

#include <optional>
#include <string>
#include <vector>

#include <torchport/torchport.h>

namespace torchport {

/// How one output compares with its expected value.
struct Comparison {
  std::string output;
  std::vector<int64_t> expected_shape, got_shape;
  c10::ScalarType expected_dtype = c10::ScalarType::Undefined;
  c10::ScalarType got_dtype = c10::ScalarType::Undefined;
  double max_abs_diff = 0.0;  ///< infinity when shapes or dtypes differ
  double max_rel_diff = 0.0;
  bool bit_exact = false;
  bool ok = false;  ///< |got - expected| <= atol + rtol * |expected| everywhere
};

/// Compares outputs element by element; names label the rows. The one
/// definition of "bit-exact" (the same bytes) and "within tolerance"
/// (|got - expected| <= atol + rtol * |expected| everywhere, NaN equal to NaN)
/// for every runtime and tool. atol and rtol must be finite and >= 0 (BadOption).
std::vector<Comparison> compare_outputs(const std::vector<std::string>& names,
                                        const std::vector<at::Tensor>& expected,
                                        const std::vector<at::Tensor>& got,
                                        double atol, double rtol);

/// The result of running the golden inputs against the golden outputs.
struct CheckReport {
  std::vector<Comparison> rows;
  bool ok() const;
  std::string to_json(int indent = 2) const;
};

/// Where torchport's files live inside a TorchScript archive (as extra files).
constexpr const char* kManifestFile = "torchport/manifest.json";
constexpr const char* kGoldenFile = "torchport/golden.pt";

/// What an artifact says about itself, read without running it.
struct ArtifactInfo {
  Manifest manifest;         ///< stored, or derived from forward() (schema 0)
  std::string format;        ///< "torchscript", "aoti", "executorch" or "onnx", told from the content
  std::string checksum;      ///< the payload's actual checksum ("" without a manifest)
  bool checksum_ok = false;  ///< the manifest's checksum matches the payload
  /// Why loading would refuse the artifact (checksum missing, of the wrong
  /// scheme or mismatched; a .pte whose program structure is refused); "" when
  /// nothing was found. `torchport inspect` exits non-zero when it is set.
  std::string problem;
};

/// Reads an artifact's manifest (deriving it from forward() when there is
/// none) and checks its payload checksum, with the runtime's limits and
/// errors. Throws NotFound or BadArtifact.
/// Without `checksum` the payload is not hashed (checksum stays "", checksum_ok false).
ArtifactInfo inspect(const std::string& path, bool checksum = true);

/// The golden examples stored in an artifact, read without loading the model.
Golden read_golden(const std::string& path);
/// Golden examples from the bytes of a golden.pt record held elsewhere (an
/// ONNX model's metadata); `where` names them in errors.
Golden read_golden_bytes(const std::string& bytes, const std::string& where);

/// The payload checksum of a TorchScript archive held in memory (what export
/// records and load verifies).
std::string payload_checksum(const std::string& archive_bytes);

/// The checksum a tune profile ties the artifact at `path` to: its manifest's
/// payload checksum, or for an ONNX model (whose manifest records none) an
/// XXH3-128 of the whole file ("xxh3-128-file:<hex>"). Throws NotFound or BadArtifact.
std::string profile_checksum(const std::string& path);

/// Runs the artifact's golden inputs and compares with its golden outputs,
/// within atol/rtol; when neither is given, within the manifest's stated
/// tolerance (bit-exact unless the format says otherwise). A caller may pass
/// tolerances stricter than the manifest's.
CheckReport selfcheck(const Model& model, std::optional<double> atol = std::nullopt,
                      std::optional<double> rtol = std::nullopt);

/// Latency of repeated runs on the same inputs.
struct BenchResult {
  int iters = 0, warmup = 0, threads = 0;
  double first_call_ms = 0.0;  ///< the first run after load, JIT profiling included
  double mean_ms = 0.0, min_ms = 0.0, p50_ms = 0.0, p90_ms = 0.0, p99_ms = 0.0, max_ms = 0.0;
  std::string to_json(int indent = 2) const;
};

/// Times one first call, `warmup` untimed calls, then `iters` timed calls.
BenchResult benchmark(const Model& model, const std::vector<at::Tensor>& inputs, int iters,
                      int warmup);

/// The tensors in a value, depth first: a tensor, or tuples, lists and dicts
/// (values in order) of tensors; None leaves are skipped. Another leaf is a
/// Runtime error naming `what`. (torchport.localize flattens eager values by
/// the same rule.)
std::vector<at::Tensor> flatten_tensors(const c10::IValue& value, const std::string& what);

/// Runs submodule `name` ("" is the model) on the tensors of an input file (a
/// list: its positional arguments; a dict: its keyword arguments), moved to
/// the model's device, and writes its tensors, flattened, to `output`
/// (torchport-run submodule, for torchport.localize's binary runtime).
void run_submodule_file(const Model& model, const std::string& name, const std::string& input,
                        const std::string& output);

/// A model's return value as export holds it (the binding converts the
/// Python object), for describe_outputs.
struct ValueTree {
  /// "tensor", "tuple", "list", "dict", or the type of anything else ("None", "str").
  std::string kind;
  at::Tensor tensor;
  /// The class of a named tuple or of a dict-like value that is not a plain
  /// dict (a ModelOutput, a dataclass); "" otherwise. Informative only.
  std::string type_name;
  /// A dict's keys or a named tuple's fields, one per item ("" where a key is not a string).
  std::vector<std::string> keys;
  /// A dict's keys that are not strings, as Python's repr() writes them.
  std::vector<std::string> non_string_keys;
  std::vector<ValueTree> items;
};

/// How deep describe_outputs lets a return value nest.
constexpr int kMaxOutputDepth = 32;

/// How a return value maps onto the manifest's flat, named outputs: the one
/// rule for output order, names and "structure" (docs/artifact.md).
struct OutputLayout {
  /// Every tensor, depth first (dicts in insertion order): what run() returns.
  std::vector<at::Tensor> tensors;
  /// The manifest's output names, one per output spec ("logits",
  /// "hidden_states.0"); a per-batch list's item is described once, "*" for
  /// the position in the batch ("output_*.boxes").
  std::vector<std::string> names;
  /// For each of `tensors`, the index of its output spec in `names`.
  std::vector<size_t> specs;
  /// The manifest's "structure"; "" for one tensor or a flat tuple.
  std::string structure_json;
  /// The oldest manifest schema that carries this structure (2, or 3 with a per-batch list).
  int schema = 2;
  /// For each of a call's `count` flat outputs, the index of its output spec;
  /// throws Runtime when `count` does not fit the structure.
  std::vector<size_t> specs_for(size_t count) const;
};

/// Describes a model's return value. A list whose length is `batch` here and
/// `other_batch` in `at_other_batch` (the same model run at another batch),
/// with items that all share one structure, becomes a list per batch element;
/// any other list keeps its length. Refuses (BadOption, naming the output)
/// what the runtime cannot carry: a leaf that is not a tensor, an empty tuple
/// or list, a dict key that is not a non-empty string, nesting deeper than
/// kMaxOutputDepth.
OutputLayout describe_outputs(const ValueTree& value, int64_t batch = -1,
                              const ValueTree* at_other_batch = nullptr, int64_t other_batch = -1);

/// "float32", "int64", ... (the manifest's dtype names).
std::string dtype_name(c10::ScalarType dtype);
/// "[1, 3, 8, 8]"; dynamic dimensions (-1) print as "*".
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace torchport
