#pragma once
// Internals shared by the runtime's sources; not installed.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torchport/torchport.h>

#include "backends/backend.h"

namespace torchport::detail {

/// Everything a loaded Model holds; immutable once built.
struct ModelState {
  std::string path;
  Options options;
  c10::Device device = c10::kCPU;
  Manifest manifest;
  std::unique_ptr<Backend> backend;
  std::optional<Golden> golden;
  double warmup_ms = 0.0;
  /// A list per batch element: a call returns fixed_outputs + B x item_outputs.
  size_t fixed_outputs = 0, item_outputs = 0;
};

/// torchport's files inside an archive; empty strings when absent.
struct ArchiveFiles {
  std::string format;                ///< "torchscript", "aoti", "executorch" or "onnx", from the content (not the name)
  std::string manifest_json;
  std::optional<Manifest> manifest;  ///< parsed manifest_json
  std::string checksum;              ///< the payload's actual checksum, when there is a manifest
  std::string golden_bytes;
};

/// Checks the archive in `bytes` (the file at `path`) against the limits,
/// tells its format from its records, reads the manifest and golden file, and checks the payload checksum the
/// manifest records (when there is one and `verify_checksum` is set), before
/// any of the model is deserialized. Throws BadArtifact.
/// What read_archive does with the payload checksum: hashing reads every record again.
enum class Checksum { Skip, Compute, Verify };
ArchiveFiles read_archive(const std::string& path, std::shared_ptr<const std::string> bytes, Checksum checksum);

/// The checksum scheme that covers the manifest too (XXH3-128 over the records,
/// then the manifest without its checksum field): what export writes, and the
/// only one a .pt2 or .pte may carry.
inline constexpr const char* kManifestCovered = "xxh3-128+manifest";
/// The scheme new exports use; TorchScript exports may also carry the older
/// record-only "xxh3-128" and "sha256", still verified.
inline constexpr const char* kDefaultChecksum = kManifestCovered;

/// Refuses a checksum (read_archive's, with Checksum::Compute or Verify) that
/// is missing where the format needs one, of a scheme that does not cover the
/// manifest (.pt2, .pte), or that does not match. Throws BadArtifact.
void verify_checksum(const ArchiveFiles& files, const std::string& path);

/// The algorithm a checksum names ("xxh3-128:..." -> "xxh3-128"); the default when it names none.
std::string checksum_algorithm(const std::string& checksum);

/// The payload checksum of a TorchScript archive held in memory, with `algorithm`.
std::string payload_checksum(const std::string& bytes, const std::string& where,
                             const std::string& algorithm = kDefaultChecksum);

/// The scheme of `file_checksum`: XXH3-128 over every byte of a file.
inline constexpr const char* kFileChecksum = "xxh3-128-file";
/// "xxh3-128-file:<hex>" of `bytes`: what a tune profile ties an ONNX model to
/// (its manifest lives inside the model and records no payload checksum).
std::string file_checksum(const std::string& bytes);

/// The checksum a tune profile ties the artifact in `bytes` (read from `path`)
/// to, and its format: the manifest's payload checksum, or for an ONNX model
/// `file_checksum` of the bytes. Throws BadArtifact, `where` first, for a file
/// that records none (a plain TorchScript file, an export older than checksums).
std::string profile_checksum(const std::string& path, const std::shared_ptr<const std::string>& bytes,
                             const std::string& where, std::string* format);

/// Parses manifest.json text; `where` names its source in error messages.
Manifest parse_manifest(const std::string& text, const std::string& where);

/// The dtype for a manifest dtype name ("float32", "int64", ...), if known.
std::optional<c10::ScalarType> parse_dtype(const std::string& name);

/// Parses torchport/golden.pt (a torch.save of {"inputs": [...], "outputs": [...]}).
Golden parse_golden(const std::string& bytes, const std::string& where);

/// The options with the device normalised; throws BadOption naming the field.
Options checked_options(const Options& options);
/// The device an Options string names ("cpu:0" is "cpu"); throws BadOption.
c10::Device parse_device(const std::string& device);

/// The first row of `inputs` when every input shares one named dynamic first
/// dim (bounds allowing 1) and holds more than one row; empty otherwise.
std::vector<at::Tensor> first_row(const Manifest& manifest, const std::vector<at::Tensor>& inputs);

/// Checks inputs against the contract; returns them contiguous and validated.
std::vector<at::Tensor> validate_inputs(const ModelState& state,
                                        const std::vector<at::Tensor>& inputs);

/// Checks a manifest's "structure" against its outputs: every output used
/// exactly once; a list per batch element only in schema 3, not nested, with
/// "*" in its outputs' names and an input with a "batch" dim. Throws
/// BadArtifact naming `where`.
void check_structure(const Manifest& manifest, const std::string& where);
/// How many outputs a call returns with a list per batch element: `fixed` + B
/// x `per_item`; false (both 0 unless counted) when the structure has none.
bool per_batch_counts(const std::string& text, size_t& fixed, size_t& per_item);
/// The flat outputs nested as `text` says ("" : the one tensor, or a tuple).
c10::IValue build_structure(const std::string& text, const std::vector<at::Tensor>& outputs);
/// A model's output flattened depth first (tuples and lists in order, dicts in
/// insertion order): the manifest's output order.
std::vector<at::Tensor> flatten_output(const c10::IValue& value);
/// The manifest's constants as IValues, by argument name.
std::map<std::string, c10::IValue> parse_constants(const std::string& text);

/// The first line of a LibTorch error, without its C++ backtrace.
std::string brief(const std::exception& e);

}  // namespace torchport::detail
