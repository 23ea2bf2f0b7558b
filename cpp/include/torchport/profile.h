#pragma once
/// Tuning profiles: the settings `torchport tune` measured fastest for one
/// artifact, which Model::load applies when Options::profile names the file.
///
///   torchport::Options options;
///   options.profile = "model.profile.json";
///   auto model = torchport::Model::load("model.pt", options);  // tuned threads, level, ...
///
/// The format (docs/runtime.md, "Tuning profiles") is defined here alone:
/// tune builds a Profile and writes Profile::to_json; the loader reads it with
/// Profile::from_json.

#include <string>

#include <torchport/torchport.h>

namespace torchport {

/// The profile schema this runtime reads and writes.
constexpr int kProfileSchema = 1;

/// One artifact's tuned settings.
struct Profile {
  int schema = kProfileSchema;
  /// The manifest checksum of the artifact tuned; a profile applies to that artifact only.
  std::string artifact_checksum;
  /// The format to run: the artifact's own, or a sibling's of the same stem
  /// ("aoti": STEM.pt2, "executorch": STEM.pte, "torchscript": STEM.pt).
  std::string format;
  /// The manifest checksum of the file run (the artifact's own for its format).
  std::string file_checksum;
  int threads = 0;            ///< Options::threads (0: LibTorch's default)
  int warmup_runs = 0;        ///< Options::warmup_runs
  bool optimize_graph = true; ///< Options::optimize_graph
  std::string optimize;       ///< Options::optimize ("", "freeze" or "fast")
  /// The tolerance every candidate's outputs were checked against (allclose's
  /// atol and rtol against the golden outputs); 0 and 0 is bit-exact.
  double atol = 0.0, rtol = 0.0;
  int batch = 1;              ///< the batch size timed
  /// What tune measured, as a JSON object (free form, for people; never read back as settings).
  std::string measured_json = "{}";

  /// The profile as JSON text.
  std::string to_json(int indent = 2) const;
  /// Parses and validates profile JSON; `where` names its source in errors.
  /// Throws Error(BadArtifact) naming the field, expected against got.
  static Profile from_json(const std::string& text, const std::string& where = "profile");
  /// Reads a profile file (a regular file of at most 1 MiB); throws NotFound or BadArtifact.
  static Profile read(const std::string& path);
};

/// `given` with the profile's settings where `given` leaves them at Options{}'s
/// defaults: a setting the caller chose wins over the profile.
Options apply_profile(const Options& given, const Profile& profile);

}  // namespace torchport
