// The one way torchport parses a JSON document it reads from a file
// (manifest.json, a tune profile): size and depth bounded before anything is
// built, NaN and Infinity named, and the top level an object.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace torchport::detail {

/// The parsed object; throws BadArtifact naming `where` when the text is over
/// `max_bytes`, nests deeper than limits::kJsonDepth, is not JSON, or is not an object.
nlohmann::json parse_json_object(const std::string& text, const std::string& where, uint64_t max_bytes);

}  // namespace torchport::detail
