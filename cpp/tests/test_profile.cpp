// Tuning profiles: the parser refuses hostile files by field, and a profile's
// settings never override the caller's.

#include <string>

#include <gtest/gtest.h>
#include <torchport/profile.h>

#include "fixtures.h"

namespace torchport::testing {
namespace {

const std::string kGood = R"({"torchport_profile": 1, "artifact_checksum": "xxh3-128:ab", "format": "torchscript",
  "file_checksum": "xxh3-128:ab", "threads": 2, "warmup_runs": 1, "optimize_graph": false, "optimize": "freeze",
  "atol": 1e-6, "rtol": 0, "batch": 8, "measured": {"p50_ms": {"a": 0.1}}})";

std::string with(const std::string& key, const std::string& value) {
  const auto at = kGood.find("\"" + key + "\": ");
  const auto start = at + key.size() + 4;
  const auto end = kGood.find_first_of(",}", kGood[start] == '{' ? kGood.find('}', start) + 1 : start);
  return kGood.substr(0, start) + value + kGood.substr(end);
}

TEST(Profile, RoundTrips) {
  const Profile p = Profile::from_json(kGood);
  EXPECT_EQ(p.threads, 2);
  EXPECT_FALSE(p.optimize_graph);
  EXPECT_EQ(p.optimize, "freeze");
  EXPECT_EQ(p.batch, 8);
  const Profile again = Profile::from_json(p.to_json());
  EXPECT_EQ(again.to_json(), p.to_json());
}

TEST(Profile, HostileFieldsAreBadArtifactNamingTheField) {
  const std::pair<std::string, std::string> cases[] = {
      {with("threads", "-1"), "'threads'"},
      {with("threads", "1e99"), "'threads'"},
      {with("warmup_runs", "\"2\""), "'warmup_runs'"},
      {with("optimize_graph", "1"), "'optimize_graph'"},
      {with("optimize", "\"turbo\""), "'optimize'"},
      {with("format", "\"tensorrt\""), "'format'"},
      {with("atol", "-1"), "'atol'"},
      {with("batch", "0"), "'batch'"},
      {with("artifact_checksum", "\"\""), "'artifact_checksum'"},
      {with("torchport_profile", "99"), "schema 99"},
      {R"({"torchport_profile": 1, "artifact_checksum": "a", "format": "torchscript", "file_checksum": "a",
           "thread": 2})", "unknown field 'thread'"},
      {"[1, 2]", "JSON object"},
      {"{", "not valid JSON"},
      {std::string(100, '[') + std::string(100, ']'), "levels deep"},
      {R"({"artifact_checksum": "a"})", "torchport_profile"},
  };
  for (const auto& [text, part] : cases) {
    SCOPED_TRACE(text.substr(0, 120));
    expect_error([&] { Profile::from_json(text, "profile 'p.json'"); }, ErrorKind::BadArtifact,
                 {"profile 'p.json'", part});
  }
  // Levels apply to TorchScript only.
  expect_error([&] { Profile::from_json(with("format", "\"aoti\"")); }, ErrorKind::BadArtifact, {"'optimize'"});
}

TEST(Profile, MissingAndNonRegularFilesAreRefused) {
  expect_error([] { Profile::read((temp_dir() / "no-such.profile.json").string()); }, ErrorKind::NotFound,
               {"no-such.profile.json"});
  expect_error([] { Profile::read(temp_dir().string()); }, ErrorKind::BadArtifact, {"profile"});
}

TEST(Profile, CallersSettingsWinOverTheProfile) {
  const Profile p = Profile::from_json(kGood);
  const Options from_profile = apply_profile(Options{}, p);
  EXPECT_EQ(from_profile.threads, 2);
  EXPECT_EQ(from_profile.warmup_runs, 1);
  EXPECT_FALSE(from_profile.optimize_graph);
  EXPECT_EQ(from_profile.optimize, "freeze");
  Options mine;
  mine.threads = 3;
  mine.warmup_runs = 5;
  mine.optimize = "fast";
  const Options kept = apply_profile(mine, p);
  EXPECT_EQ(kept.threads, 3);
  EXPECT_EQ(kept.warmup_runs, 5);
  EXPECT_EQ(kept.optimize, "fast");
  EXPECT_FALSE(kept.optimize_graph);  // left at its default: the profile's
}

}  // namespace
}  // namespace torchport::testing
