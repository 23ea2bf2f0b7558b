// manifest.json: reading, writing, and the names it uses for dtypes.

#include <cmath>
#include <set>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include <torchport/tools.h>

#include "detail.h"
#include "image_input.h"
#include "json_document.h"
#include "reader.h"

namespace torchport {
namespace {

using nlohmann::json;

constexpr std::pair<const char*, c10::ScalarType> kDtypes[] = {
    {"float32", c10::ScalarType::Float},  {"float64", c10::ScalarType::Double},
    {"float16", c10::ScalarType::Half},   {"bfloat16", c10::ScalarType::BFloat16},
    {"int8", c10::ScalarType::Char},      {"int16", c10::ScalarType::Short},
    {"int32", c10::ScalarType::Int},      {"int64", c10::ScalarType::Long},
    {"uint8", c10::ScalarType::Byte},     {"bool", c10::ScalarType::Bool},
    {"complex64", c10::ScalarType::ComplexFloat},
    {"complex128", c10::ScalarType::ComplexDouble},
    // Not uint16/32/64 or float8: torch.save writes them with _rebuild_tensor_v3,
    // which LibTorch's unpickler cannot read, so no golden file could carry them.
};

constexpr size_t kMaxNameBytes = 256;    // an input, output or dimension name
constexpr size_t kMaxTensors = 10'000;   // inputs or outputs
constexpr size_t kMaxDims = 64;          // dimensions of one tensor (LibTorch's own limit)
constexpr int64_t kMaxDim = int64_t{1} << 48;
constexpr size_t kMaxLabels = 100'000;      // class names, and categories of one feature
constexpr size_t kMaxFeatures = 100'000;    // input columns of a tabular model

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw Error(ErrorKind::BadArtifact, where + ": " + what);
}

const json& field(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) bad(where, std::string("missing field '") + key + "'");
  return *it;
}

std::string string_field(const json& obj, const char* key, const std::string& where) {
  const json& v = field(obj, key, where);
  if (!v.is_string()) bad(where, std::string("field '") + key + "' must be a string, got " + v.dump());
  return v.get<std::string>();
}

// A name the runtime, the command line and file formats can all carry.
void check_name(const std::string& name, const std::string& at, const char* what) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    bad(at, std::string(what) + " must have 1 to " + std::to_string(kMaxNameBytes) + " bytes, got " +
                std::to_string(name.size()));
  }
  for (const unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) bad(at, std::string(what) + " holds a control character: " + json(name).dump());
  }
}

std::string short_dump(const json& v) {
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return text.size() > 80 ? text.substr(0, 77) + "..." : text;
}

// An input's "image" contract. Every field is required and only the values this runtime
// implements are accepted, so that an artifact asking for another resize or layout is
// refused rather than fed differently from how it was trained.
ImageSpec parse_image(const json& item, const TensorSpec& spec, const std::string& where) {
  const std::string at = where + " image";
  if (!item.is_object()) bad(at, "must be an object {layout, channels, range, resize, mean, std}, got " + short_dump(item));
  auto one_of = [&](const char* key, const char* expected) {
    const std::string got = string_field(item, key, at);
    if (got != expected) bad(at, std::string("'") + key + "' must be \"" + expected + "\", got " + json(got).dump());
    return got;
  };
  ImageSpec image;
  image.layout = one_of("layout", "HWC");
  image.channels = one_of("channels", "RGB");
  const json& range = field(item, "range", at);
  if (range != json::array({0, 255})) bad(at, "'range' must be [0, 255] (8-bit pixels), got " + short_dump(range));
  image.range_min = 0;
  image.range_max = 255;
  const json& resize = field(item, "resize", at);
  if (!resize.is_object()) bad(at, "'resize' must be {\"size\": [h, w], \"method\": \"bilinear\"}, got " + short_dump(resize));
  const json& size = field(resize, "size", at + " resize");
  if (!size.is_array() || size.size() != 2) bad(at, "resize 'size' must be [h, w], got " + short_dump(size));
  for (const json& d : size) {
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > detail::limits::kImageSide) {
      bad(at, "resize 'size' must hold integers from 1 to " + std::to_string(detail::limits::kImageSide) + ", got " +
                  short_dump(size));
    }
    image.size.push_back(d.get<int64_t>());
  }
  image.resize = string_field(resize, "method", at + " resize");
  if (image.resize != "bilinear") bad(at, "resize 'method' must be \"bilinear\", got " + json(image.resize).dump());
  for (const char* flag : {"antialias", "align_corners"}) {
    auto it = resize.find(flag);
    if (it != resize.end() && *it != false) bad(at, std::string("resize '") + flag + "' must be false, got " + short_dump(*it));
  }
  auto stats = [&](const char* key, bool positive) {
    const json& v = field(item, key, at);
    if (!v.is_array() || v.size() != 3) bad(at, std::string("'") + key + "' must be 3 numbers (R, G, B), got " + short_dump(v));
    std::vector<double> out;
    for (const json& x : v) {
      if (!x.is_number() || !std::isfinite(x.get<double>()) || (positive && x.get<double>() <= 0)) {
        bad(at, std::string("'") + key + "' must hold finite numbers" + (positive ? " above 0" : "") + ", got " +
                    short_dump(v));
      }
      out.push_back(x.get<double>());
    }
    return out;
  };
  image.mean = stats("mean", false);
  image.std = stats("std", true);
  // The picture itself: uint8 [batch, H, W, 3].
  const bool fits = spec.dtype == c10::ScalarType::Byte && spec.shape && spec.shape->size() == 4 && (*spec.shape)[3] == 3;
  if (!fits) {
    bad(at, "describes uint8 [batch, H, W, 3] pictures, but the input is " +
                (spec.dtype ? dtype_name(*spec.dtype) : std::string("of unknown dtype")) + " " +
                (spec.shape ? shape_string(*spec.shape) : std::string("of unknown shape")));
  }
  return image;
}

json image_to_json(const ImageSpec& image) {
  return {{"layout", image.layout},
          {"channels", image.channels},
          {"range", {image.range_min, image.range_max}},
          {"resize", {{"size", image.size}, {"method", image.resize}, {"antialias", false}, {"align_corners", false}}},
          {"mean", image.mean},
          {"std", image.std}};
}

std::vector<TensorSpec> parse_specs(const json& obj, const char* key, const std::string& where) {
  const json& list = field(obj, key, where);
  if (!list.is_array()) bad(where, std::string("field '") + key + "' must be a list");
  if (list.size() > kMaxTensors) {
    bad(where, std::string("field '") + key + "' lists " + std::to_string(list.size()) + " tensors, more than " +
                   std::to_string(kMaxTensors));
  }
  std::vector<TensorSpec> specs;
  std::set<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = where + " " + key + "[" + std::to_string(i) + "]";
    const json& item = list[i];
    if (!item.is_object()) bad(at, "must be an object {name, dtype, shape}");
    TensorSpec spec;
    spec.name = string_field(item, "name", at);
    check_name(spec.name, at, "name");
    if (!seen.insert(spec.name).second) bad(at, "name '" + spec.name + "' is used twice");
    const std::string dtype = string_field(item, "dtype", at);
    spec.dtype = detail::parse_dtype(dtype);
    if (!spec.dtype) {
      std::string known;
      for (const auto& n : supported_dtypes()) known += (known.empty() ? "" : ", ") + n;
      bad(at, "dtype '" + dtype + "' is not supported; supported: " + known);
    }
    const json& shape = field(item, "shape", at);
    if (!shape.is_array()) bad(at, "shape must be a list of integers or null, got " + short_dump(shape));
    if (shape.size() > kMaxDims) {
      bad(at, "shape has " + std::to_string(shape.size()) + " dimensions, more than " + std::to_string(kMaxDims));
    }
    std::vector<int64_t> dims;
    std::vector<std::string> names;
    bool named = false;
    for (const json& d : shape) {
      if (d.is_null()) {
        dims.push_back(-1);
        names.emplace_back();
      } else if (d.is_string()) {
        check_name(d.get<std::string>(), at, "dimension name");
        dims.push_back(-1);
        names.push_back(d.get<std::string>());
        named = true;
      } else if ((d.is_number_unsigned() && d.get<uint64_t>() <= static_cast<uint64_t>(kMaxDim)) ||
                 (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() >= 0 &&
                  d.get<int64_t>() <= kMaxDim)) {
        dims.push_back(d.get<int64_t>());
        names.emplace_back();
      } else {
        bad(at, "shape entries must be integers from 0 to 2^48, null or a dimension name, got " +
                    short_dump(d));
      }
    }
    spec.shape = std::move(dims);
    if (named) spec.dim_names = std::move(names);
    if (auto opt = item.find("optional"); opt != item.end()) {
      if (!opt->is_boolean()) bad(at, "field 'optional' must be true or false, got " + short_dump(*opt));
      spec.optional = opt->get<bool>();
    }
    if (auto dd = item.find("data_dependent"); dd != item.end()) {
      if (!dd->is_array()) bad(at, "field 'data_dependent' must be a list of dims, got " + short_dump(*dd));
      for (const json& d : *dd) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() >= static_cast<int64_t>(spec.shape->size()) ||
            (*spec.shape)[d.get<int64_t>()] >= 0) {
          bad(at, "field 'data_dependent' must list dynamic dims of shape " + short_dump(shape) + ", got " + short_dump(d));
        }
        spec.data_dependent_dims.push_back(d.get<int64_t>());
      }
    }
    if (auto image = item.find("image"); image != item.end()) {
      if (std::string(key) != "inputs") bad(at, "field 'image' describes an input; outputs have none");
      spec.image = parse_image(*image, spec, at);
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

json specs_to_json(const std::vector<TensorSpec>& specs) {
  json list = json::array();
  for (const auto& spec : specs) {
    json shape = nullptr;
    if (spec.shape) {
      shape = json::array();
      for (size_t i = 0; i < spec.shape->size(); ++i) {
        const int64_t d = (*spec.shape)[i];
        const bool named = i < spec.dim_names.size() && !spec.dim_names[i].empty();
        shape.push_back(d >= 0 ? json(d) : named ? json(spec.dim_names[i]) : json(nullptr));
      }
    }
    json item = {{"name", spec.name},
                 {"dtype", spec.dtype ? json(dtype_name(*spec.dtype)) : json(nullptr)},
                 {"shape", shape}};
    if (spec.optional) item["optional"] = true;
    if (!spec.data_dependent_dims.empty()) item["data_dependent"] = spec.data_dependent_dims;
    if (spec.image) item["image"] = image_to_json(*spec.image);
    list.push_back(std::move(item));
  }
  return list;
}

// A list of distinct names (labels, a vocabulary): strings, each a valid name, at most `limit`.
std::vector<std::string> parse_names(const json& list, const std::string& at, size_t limit, bool allow_empty) {
  if (!list.is_array()) bad(at, "must be a list of strings, got " + short_dump(list));
  if (list.size() > limit) {
    bad(at, "has " + std::to_string(list.size()) + " entries, more than the limit of " + std::to_string(limit));
  }
  if (list.empty() && !allow_empty) bad(at, "is empty; expected at least one entry");
  std::vector<std::string> names;
  names.reserve(list.size());
  std::set<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string entry = at + "[" + std::to_string(i) + "]";
    if (!list[i].is_string()) bad(entry, "must be a string, got " + short_dump(list[i]));
    names.push_back(list[i].get<std::string>());
    check_name(names.back(), entry, "an entry");
    if (!seen.insert(names.back()).second) bad(entry, "repeats " + json(names.back()).dump() + "; entries must be distinct");
  }
  return names;
}

std::vector<FeatureSpec> parse_features(const json& list, const std::string& where) {
  const std::string at = where + ": field 'features'";
  if (!list.is_array()) bad(at, "must be a list of {\"name\", \"type\"[, \"vocabulary\"]}, got " + short_dump(list));
  if (list.size() > kMaxFeatures) {
    bad(at, "has " + std::to_string(list.size()) + " entries, more than the limit of " + std::to_string(kMaxFeatures));
  }
  std::vector<FeatureSpec> features;
  std::set<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string item_at = at + "[" + std::to_string(i) + "]";
    const json& item = list[i];
    if (!item.is_object()) bad(item_at, "must be an object, got " + short_dump(item));
    FeatureSpec f;
    f.name = string_field(item, "name", item_at);
    check_name(f.name, item_at, "name");
    if (!seen.insert(f.name).second) bad(item_at, "repeats the feature name " + json(f.name).dump());
    f.type = string_field(item, "type", item_at);
    auto vocabulary = item.find("vocabulary");
    if (f.type == "categorical") {
      if (vocabulary == item.end()) bad(item_at, "a categorical feature needs a 'vocabulary'");
      f.vocabulary = parse_names(*vocabulary, item_at + " vocabulary", kMaxLabels, /*allow_empty=*/false);
    } else if (f.type == "numeric") {
      if (vocabulary != item.end()) bad(item_at, "a numeric feature has no 'vocabulary'");
    } else {
      bad(item_at, "type must be \"numeric\" or \"categorical\", got " + json(f.type).dump());
    }
    features.push_back(std::move(f));
  }
  return features;
}

json features_to_json(const std::vector<FeatureSpec>& features) {
  json list = json::array();
  for (const auto& f : features) {
    json item = {{"name", f.name}, {"type", f.type}};
    if (f.type == "categorical") item["vocabulary"] = f.vocabulary;
    list.push_back(item);
  }
  return list;
}

}  // namespace

std::vector<std::string> supported_dtypes() {
  std::vector<std::string> names;
  for (const auto& [name, type] : kDtypes) names.emplace_back(name);
  return names;
}

std::string dtype_name(c10::ScalarType dtype) {
  for (const auto& [name, type] : kDtypes) {
    if (type == dtype) return name;
  }
  return c10::toString(dtype);
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out << ", ";
    if (shape[i] < 0) {
      out << "*";
    } else {
      out << shape[i];
    }
  }
  out << "]";
  return out.str();
}

std::string Manifest::to_json(int indent) const {
  json metadata = json::parse(metadata_json, nullptr, /*allow_exceptions=*/false);
  if (metadata.is_discarded()) metadata = json::object();
  json out = {
      {"schema", schema},
      {"name", name},
      {"torchport_version", torchport_version},
      {"torch_version", torch_version},
      {"export_method", export_method},
      {"created", created},
      {"inputs", specs_to_json(inputs)},
      {"outputs", specs_to_json(outputs)},
      {"metadata", metadata},
      {"golden", has_golden},
  };
  if (!checksum.empty()) out["checksum"] = checksum;
  if (!format.empty()) out["format"] = format;
  if (!optimize.empty()) out["optimize"] = optimize;
  if (atol != 0.0 || rtol != 0.0) out["tolerance"] = {{"atol", atol}, {"rtol", rtol}};
  if (!dim_bounds.empty()) {
    json dims = json::object();
    for (const auto& [dim, b] : dim_bounds) dims[dim] = {{"min", b.min}, {"max", b.max}};
    out["dims"] = dims;
  }
  json constants = json::parse(constants_json, nullptr, /*allow_exceptions=*/false);
  if (constants.is_object() && !constants.empty()) out["constants"] = constants;
  if (!structure_json.empty()) {
    json structure = json::parse(structure_json, nullptr, /*allow_exceptions=*/false);
    if (!structure.is_discarded()) out["structure"] = structure;
  }
  if (!labels.empty()) out["labels"] = labels;
  if (!features.empty()) out["features"] = features_to_json(features);
  return out.dump(indent);
}

Manifest Manifest::from_json(const std::string& text, const std::string& where) {
  return detail::parse_manifest(text, where);
}

namespace detail {

std::optional<c10::ScalarType> parse_dtype(const std::string& name) {
  for (const auto& [n, type] : kDtypes) {
    if (name == n) return type;
  }
  return std::nullopt;
}

nlohmann::json parse_json_object(const std::string& text, const std::string& where, uint64_t max_bytes) {
  if (text.size() > max_bytes) {
    bad(where, "is " + std::to_string(text.size()) + " bytes, more than the limit of " +
                   std::to_string(max_bytes));
  }
  // Depth is checked while parsing, before a deep document is built.
  struct TooDeep {};
  json doc;
  try {
    doc = json::parse(
        text,
        [](int depth, json::parse_event_t, json&) {
          if (depth > limits::kJsonDepth) throw TooDeep{};
          return true;
        },
        /*allow_exceptions=*/true);
  } catch (const TooDeep&) {
    bad(where, "nests more than " + std::to_string(limits::kJsonDepth) + " levels deep (the limit)");
  } catch (const json::parse_error& e) {
    std::string why = e.what();
    // nlohmann stops at the first letter of NaN or Infinity: "last read: '"x": N'".
    const auto read = why.rfind("last read: '");
    std::string last = read == std::string::npos ? "" : why.substr(read + 12);
    if (!last.empty() && last.back() == '\'') last.pop_back();
    const auto word = last.find_last_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
    const std::string token = word == std::string::npos ? last : last.substr(word + 1);
    if (!token.empty() && (token[0] == 'N' || token[0] == 'I')) {
      why = "it holds NaN or Infinity, which JSON cannot carry (numbers must be finite)";
    }
    bad(where, "not valid JSON: " + why);
  } catch (const json::exception& e) {  // a number past a double's range ("1e999"): out_of_range, not parse_error
    bad(where, std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) bad(where, "must be a JSON object, got " + std::string(doc.type_name()));
  return doc;
}

namespace {

// The steps of parse_manifest, in the order it takes them (a manifest with
// several faults is refused for the first one, as before the split).

int parse_schema(const json& doc, const std::string& where) {
  const json& schema = field(doc, "schema", where);
  if (!schema.is_number_integer() || (!schema.is_number_unsigned() && schema.get<int64_t>() < 1) ||
      (schema.is_number_unsigned() && schema.get<uint64_t>() < 1)) {
    bad(where, "field 'schema' must be a positive integer, got " + short_dump(schema));
  }
  if (schema.get<uint64_t>() > static_cast<uint64_t>(kManifestSchema)) {
    bad(where, "schema " + short_dump(schema) + " is newer than this runtime reads (" +
                   std::to_string(kManifestSchema) + "); upgrade torchport (runtime " + version() + ")");
  }
  return static_cast<int>(schema.get<uint64_t>());
}

// Name, provenance and the tensors in and out: what every manifest must hold.
void parse_identity(const json& doc, const std::string& where, Manifest& m) {
  m.name = string_field(doc, "name", where);
  check_name(m.name, where, "field 'name'");
  m.torchport_version = string_field(doc, "torchport_version", where);
  m.torch_version = string_field(doc, "torch_version", where);
  m.export_method = string_field(doc, "export_method", where);
  m.created = string_field(doc, "created", where);
  m.inputs = parse_specs(doc, "inputs", where);
  m.outputs = parse_specs(doc, "outputs", where);
  if (m.inputs.empty()) bad(where, "'inputs' is empty");
  if (m.outputs.empty()) bad(where, "'outputs' is empty");
}

std::string parse_checksum(const json& checksum, const std::string& where) {
  const bool known = checksum.is_string() && (checksum.get<std::string>().rfind("xxh3-128:", 0) == 0 ||
                                              checksum.get<std::string>().rfind("xxh3-128+manifest:", 0) == 0 ||
                                              checksum.get<std::string>().rfind("sha256:", 0) == 0);
  if (!known) {
    bad(where, "field 'checksum' must be a string \"xxh3-128+manifest:<hex>\", \"xxh3-128:<hex>\" or \"sha256:<hex>\", got " +
                   checksum.dump());
  }
  return checksum.get<std::string>();
}

std::string parse_format(const json& format, const std::string& where) {
  if (!format.is_string()) bad(where, "field 'format' must be a string, got " + short_dump(format));
  const std::string name = format.get<std::string>();
  if (name != "torchscript" && name != "aoti" && name != "onnx" && name != "executorch") {
    bad(where, "field 'format' must be \"torchscript\", \"aoti\", \"onnx\" or \"executorch\", got " + short_dump(format));
  }
  return name;
}

std::string parse_optimize(const json& optimize, const std::string& where) {
  if (!optimize.is_string() ||
      (optimize.get<std::string>() != "none" && optimize.get<std::string>() != "freeze" &&
       optimize.get<std::string>() != "fast")) {
    bad(where, "field 'optimize' must be \"none\", \"freeze\" or \"fast\", got " + short_dump(optimize));
  }
  return optimize.get<std::string>();
}

// {"atol": A, "rtol": R}: finite, non-negative numbers.
void parse_tolerance(const json& tolerance, const std::string& where, Manifest& m) {
  if (!tolerance.is_object()) {
    bad(where, "field 'tolerance' must be {\"atol\": A, \"rtol\": R}, got " + short_dump(tolerance));
  }
  auto number = [&](const char* key) {
    auto it = tolerance.find(key);
    if (it == tolerance.end() || !it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0) {
      bad(where, std::string("field 'tolerance' must hold finite numbers >= 0; '") + key + "' is " +
                     (it == tolerance.end() ? std::string("missing") : short_dump(*it)));
    }
    return it->get<double>();
  };
  m.atol = number("atol");
  m.rtol = number("rtol");
}

// {"seq": {"min": 1, "max": 512}}: bounds of named dynamic dims of `inputs`.
std::map<std::string, DimBounds> parse_dim_bounds(const json& dims, const std::vector<TensorSpec>& inputs,
                                                  const std::string& where) {
  if (!dims.is_object()) bad(where, "field 'dims' must be {name: {\"min\": N, \"max\": M}}, got " + short_dump(dims));
  std::set<std::string> named;
  for (const auto& spec : inputs) named.insert(spec.dim_names.begin(), spec.dim_names.end());
  std::map<std::string, DimBounds> out;
  for (const auto& [dim, b] : dims.items()) {
    const std::string at = where + " dims['" + dim + "']";
    if (!named.count(dim)) bad(at, "names no dynamic dimension of the inputs");
    auto bound = [&](const char* key) {
      auto it = b.find(key);
      if (!b.is_object() || it == b.end() || !it->is_number_integer() || it->get<int64_t>() < 0 ||
          it->get<int64_t>() > kMaxDim) {
        bad(at, std::string("'") + key + "' must be an integer from 0 to 2^48, got " +
                    (b.is_object() && it != b.end() ? short_dump(*it) : std::string("nothing")));
      }
      return it->get<int64_t>();
    };
    DimBounds bounds{bound("min"), bound("max")};
    if (bounds.min > bounds.max) {
      bad(at, "min " + std::to_string(bounds.min) + " is above max " + std::to_string(bounds.max));
    }
    out[dim] = bounds;
  }
  return out;
}

// Keyword arguments passed to forward(): scalars and strings only.
std::string check_constants(const json& constants, const std::string& where) {
  if (!constants.is_object()) bad(where, "field 'constants' must be an object, got " + short_dump(constants));
  for (const auto& [arg, value] : constants.items()) {
    check_name(arg, where + " constants", "argument name");
    if (!(value.is_null() || value.is_boolean() || value.is_number_integer() || value.is_number_float() ||
          value.is_string())) {
      bad(where, "constants['" + arg + "'] must be an int, float, bool, str or null, got " + short_dump(value));
    }
  }
  return constants.dump();
}

// The feature columns must fill the one input vector exactly: [batch, width].
void check_features_fill_the_input(const Manifest& m, const std::string& where) {
  size_t width = 0;
  for (const auto& f : m.features) width += f.width();
  const auto& first = m.inputs.front();
  if (m.inputs.size() != 1 || !first.shape || first.shape->size() != 2 ||
      ((*first.shape)[1] >= 0 && static_cast<size_t>((*first.shape)[1]) != width)) {
    bad(where, "field 'features' describes " + std::to_string(m.features.size()) + " columns of " +
                   std::to_string(width) + " floats in all; expected one input of shape [batch, " +
                   std::to_string(width) + "], got " + std::to_string(m.inputs.size()) + " input(s), the first " +
                   (first.shape ? shape_string(*first.shape) : std::string("of unknown shape")));
  }
}

}  // namespace

Manifest parse_manifest(const std::string& text, const std::string& where) {
  json doc = parse_json_object(text, where, limits::kJsonBytes);
  Manifest m;
  m.schema = parse_schema(doc, where);
  parse_identity(doc, where, m);
  if (auto meta = doc.find("metadata"); meta != doc.end()) {
    if (!meta->is_object()) bad(where, "field 'metadata' must be an object, got " + short_dump(*meta));
    m.metadata_json = meta->dump();
  }
  if (auto checksum = doc.find("checksum"); checksum != doc.end()) m.checksum = parse_checksum(*checksum, where);
  if (auto format = doc.find("format"); format != doc.end()) m.format = parse_format(*format, where);
  if (auto optimize = doc.find("optimize"); optimize != doc.end()) m.optimize = parse_optimize(*optimize, where);
  if (auto tolerance = doc.find("tolerance"); tolerance != doc.end()) parse_tolerance(*tolerance, where, m);
  if (auto dims = doc.find("dims"); dims != doc.end()) m.dim_bounds = parse_dim_bounds(*dims, m.inputs, where);
  if (auto constants = doc.find("constants"); constants != doc.end()) {
    m.constants_json = check_constants(*constants, where);
  }
  if (auto structure = doc.find("structure"); structure != doc.end()) {
    m.structure_json = structure->dump();
    detail::check_structure(m, where + " structure");
  }
  auto golden = doc.find("golden");
  if (golden != doc.end() && !golden->is_boolean()) {
    bad(where, "field 'golden' must be true or false, got " + short_dump(*golden));
  }
  m.has_golden = golden != doc.end() && golden->get<bool>();
  if (auto labels = doc.find("labels"); labels != doc.end()) {
    m.labels = parse_names(*labels, where + ": field 'labels'", kMaxLabels, /*allow_empty=*/true);
  }
  if (auto features = doc.find("features"); features != doc.end()) {
    m.features = parse_features(*features, where);
    check_features_fill_the_input(m, where);
  }
  return m;
}

}  // namespace detail
}  // namespace torchport
