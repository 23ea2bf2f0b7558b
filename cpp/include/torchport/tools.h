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
  std::string format;        ///< "torchscript" or "aoti", told from the records
  std::string checksum;      ///< the payload's actual checksum ("" without a manifest)
  bool checksum_ok = false;  ///< the manifest's checksum matches the payload
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

/// "float32", "int64", ... (the manifest's dtype names).
std::string dtype_name(c10::ScalarType dtype);
/// "[1, 3, 8, 8]"; dynamic dimensions (-1) print as "*".
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace torchport
