// Tuning profiles (torchport/profile.h): the one parser and writer of the
// format, and how a profile's settings meet the caller's Options.

#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include <torchport/profile.h>

#include "json_document.h"
#include "reader.h"

namespace torchport {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxProfileBytes = 1u << 20;
constexpr size_t kMaxChecksumBytes = 256;
constexpr int kMaxBatch = 1 << 30;

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw Error(ErrorKind::BadArtifact, where + ": " + what);
}

std::string shown(const json& v) {
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return text.size() > 80 ? text.substr(0, 77) + "..." : text;
}

int int_field(const json& doc, const char* key, int min, int max, int fallback, const std::string& where) {
  auto it = doc.find(key);
  if (it == doc.end()) return fallback;
  if (!it->is_number_integer() || it->get<int64_t>() < min || it->get<int64_t>() > max) {
    bad(where, std::string("field '") + key + "' must be an integer from " + std::to_string(min) + " to " +
                   std::to_string(max) + ", got " + shown(*it));
  }
  return static_cast<int>(it->get<int64_t>());
}

std::string string_field(const json& doc, const char* key, const std::set<std::string>& allowed,
                         const std::string& where) {
  auto it = doc.find(key);
  if (it == doc.end()) bad(where, std::string("missing field '") + key + "'");
  if (!it->is_string()) bad(where, std::string("field '") + key + "' must be a string, got " + shown(*it));
  const std::string value = it->get<std::string>();
  if (!allowed.empty() && !allowed.count(value)) {
    std::string choices;
    for (const auto& a : allowed) choices += (choices.empty() ? "\"" : ", \"") + a + "\"";
    bad(where, std::string("field '") + key + "' must be one of " + choices + ", got " + shown(*it));
  }
  if (allowed.empty() && (value.empty() || value.size() > kMaxChecksumBytes)) {
    bad(where, std::string("field '") + key + "' must be a checksum of 1 to " + std::to_string(kMaxChecksumBytes) +
                   " bytes, got " + std::to_string(value.size()));
  }
  return value;
}

double tolerance_field(const json& doc, const char* key, const std::string& where) {
  auto it = doc.find(key);
  if (it == doc.end()) return 0.0;
  if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0) {
    bad(where, std::string("field '") + key + "' must be a finite number >= 0, got " + shown(*it));
  }
  return it->get<double>();
}

}  // namespace

std::string Profile::to_json(int indent) const {
  json out;
  out["torchport_profile"] = schema;
  out["artifact_checksum"] = artifact_checksum;
  out["format"] = format;
  out["file_checksum"] = file_checksum;
  out["threads"] = threads;
  out["warmup_runs"] = warmup_runs;
  out["optimize_graph"] = optimize_graph;
  out["optimize"] = optimize;
  out["atol"] = atol;
  out["rtol"] = rtol;
  out["batch"] = batch;
  json measured = json::parse(measured_json, nullptr, /*allow_exceptions=*/false);
  out["measured"] = measured.is_object() ? measured : json::object();
  return out.dump(indent);
}

Profile Profile::from_json(const std::string& text, const std::string& where) {
  json doc = detail::parse_json_object(text, where, kMaxProfileBytes);
  static const std::set<std::string> known = {"torchport_profile", "artifact_checksum", "format", "file_checksum",
                                              "threads", "warmup_runs", "optimize_graph", "optimize", "atol",
                                              "rtol", "batch", "measured"};
  for (const auto& [key, value] : doc.items()) {
    // A misspelt setting must not be dropped without a word.
    if (!known.count(key)) bad(where, "unknown field '" + key.substr(0, 80) + "'");
  }
  Profile p;
  auto schema = doc.find("torchport_profile");
  if (schema == doc.end()) bad(where, "missing field 'torchport_profile' (not a torchport tune profile)");
  p.schema = int_field(doc, "torchport_profile", 1, 1'000'000, 0, where);
  if (p.schema > kProfileSchema) {
    bad(where, "field 'torchport_profile' is schema " + std::to_string(p.schema) + ", this runtime reads up to " +
                   std::to_string(kProfileSchema) + "; upgrade torchport or run torchport tune again");
  }
  p.artifact_checksum = string_field(doc, "artifact_checksum", {}, where);
  p.format = string_field(doc, "format", {"torchscript", "aoti", "executorch", "onnx"}, where);
  p.file_checksum = string_field(doc, "file_checksum", {}, where);
  p.threads = int_field(doc, "threads", 0, max_threads(), 0, where);
  p.warmup_runs = int_field(doc, "warmup_runs", 0, kMaxWarmupRuns, 0, where);
  if (auto it = doc.find("optimize_graph"); it != doc.end()) {
    if (!it->is_boolean()) bad(where, "field 'optimize_graph' must be true or false, got " + shown(*it));
    p.optimize_graph = it->get<bool>();
  }
  if (doc.contains("optimize")) p.optimize = string_field(doc, "optimize", {"", "freeze", "fast"}, where);
  if (!p.optimize.empty() && p.format != "torchscript") {
    bad(where, "field 'optimize' is \"" + p.optimize + "\", but levels apply to TorchScript only (format is \"" +
                   p.format + "\")");
  }
  p.atol = tolerance_field(doc, "atol", where);
  p.rtol = tolerance_field(doc, "rtol", where);
  p.batch = int_field(doc, "batch", 1, kMaxBatch, 1, where);
  if (auto it = doc.find("measured"); it != doc.end()) {
    if (!it->is_object()) bad(where, "field 'measured' must be an object, got " + shown(*it));
    p.measured_json = it->dump();
  }
  return p;
}

Profile Profile::read(const std::string& path) {
  // Refused by size before a byte is read (a FIFO or device is refused by the reader).
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxProfileBytes) {
    bad("profile '" + path + "'", "is " + std::to_string(size) + " bytes, more than the limit of " +
                                      std::to_string(kMaxProfileBytes));
  }
  const auto bytes = detail::read_regular_file(path, "profile", ErrorKind::BadArtifact);
  return from_json(*bytes, "profile '" + path + "'");
}

Options apply_profile(const Options& given, const Profile& profile) {
  const Options defaults;
  Options out = given;
  if (given.threads == defaults.threads) out.threads = profile.threads;
  if (given.warmup_runs == defaults.warmup_runs) out.warmup_runs = profile.warmup_runs;
  if (given.optimize_graph == defaults.optimize_graph) out.optimize_graph = profile.optimize_graph;
  if (given.optimize == defaults.optimize) out.optimize = profile.optimize;
  return out;
}

}  // namespace torchport
