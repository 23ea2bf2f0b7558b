// Structured outputs: how a model's nested return value (tuples, named tuples,
// lists, dicts) maps onto the manifest's flat, named outputs, and back.
//
// The manifest's "structure" is a tree whose leaves are output indices:
//   0                                        outputs[0]
//   {"type": "tuple", "items": [...]}        a tuple
//   {"type": "tuple", "class": "Pair", "keys": [...], "items": [...]}  a named tuple
//   {"type": "list", "items": [...]}         a list
//   {"type": "dict", "keys": [...], "items": [...]}  a dict with string keys, in that order
// A dict or named tuple may carry "class" (a ModelOutput's class name); it is
// informative only: nothing is imported or run from it.

#include <set>

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/core/jit_type.h>
#include <nlohmann/json.hpp>

#include "detail.h"

namespace torchport::detail {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw Error(ErrorKind::BadArtifact, where + ": " + what);
}

void check_node(const json& node, size_t outputs, std::set<size_t>& seen, const std::string& where) {
  if (node.is_number_integer()) {
    const int64_t i = node.get<int64_t>();
    if (i < 0 || static_cast<size_t>(i) >= outputs) {
      bad(where, "leaf " + std::to_string(i) + " is not an output index (0 to " + std::to_string(outputs - 1) + ")");
    }
    if (!seen.insert(static_cast<size_t>(i)).second) bad(where, "output " + std::to_string(i) + " appears twice");
    return;
  }
  if (!node.is_object()) bad(where, "a node must be an output index or {type, items}, got " + node.dump());
  auto type = node.find("type");
  auto items = node.find("items");
  if (type == node.end() || !type->is_string() ||
      (*type != "tuple" && *type != "list" && *type != "dict")) {
    bad(where, "'type' must be \"tuple\", \"list\" or \"dict\"");
  }
  if (items == node.end() || !items->is_array()) bad(where, "'items' must be a list");
  if (auto cls = node.find("class"); cls != node.end() && !cls->is_string()) bad(where, "'class' must be a string");
  auto keys = node.find("keys");
  if (*type == "dict" && keys == node.end()) bad(where, "a dict needs 'keys'");
  if (keys != node.end()) {
    if (*type == "list") bad(where, "a list has no 'keys'");
    if (!keys->is_array() || keys->size() != items->size()) bad(where, "'keys' must be a list as long as 'items'");
    std::set<std::string> names;
    for (const json& k : *keys) {
      if (!k.is_string() || !names.insert(k.get<std::string>()).second) {
        bad(where, "'keys' must be distinct strings, got " + k.dump());
      }
    }
  }
  for (const json& item : *items) check_node(item, outputs, seen, where);
}

c10::IValue build(const json& node, const std::vector<at::Tensor>& outputs) {
  if (node.is_number_integer()) return outputs.at(node.get<size_t>());
  std::vector<c10::IValue> items;
  for (const json& item : node["items"]) items.push_back(build(item, outputs));
  const std::string type = node["type"];
  if (type == "list") {
    c10::impl::GenericList list(c10::AnyType::get());
    for (auto& v : items) list.push_back(std::move(v));
    return list;
  }
  if (type == "dict") {
    c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
    const json& keys = node["keys"];
    for (size_t i = 0; i < items.size(); ++i) dict.insert(keys[i].get<std::string>(), items[i]);
    return dict;
  }
  if (node.contains("keys")) {  // a named tuple keeps its field names
    std::vector<std::string> fields;
    std::vector<c10::TypePtr> types;
    for (const json& k : node["keys"]) fields.push_back(k.get<std::string>());
    for (const auto& v : items) types.push_back(v.type());
    auto tuple_type = c10::TupleType::createNamed(node.value("class", std::string("NamedTuple")), fields, types);
    return c10::ivalue::Tuple::createNamed(std::move(items), tuple_type);
  }
  return c10::ivalue::Tuple::create(std::move(items));
}

void flatten_into(const c10::IValue& value, std::vector<at::Tensor>& out, int depth) {
  if (depth > 64) throw Error(ErrorKind::Runtime, "model output nests more than 64 levels deep");
  if (value.isTensor()) {
    out.push_back(value.toTensor());
  } else if (value.isTuple()) {
    for (const auto& v : value.toTupleRef().elements()) flatten_into(v, out, depth + 1);
  } else if (value.isList()) {
    auto list = value.toList();
    for (size_t i = 0; i < list.size(); ++i) flatten_into(list.get(i), out, depth + 1);
  } else if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) flatten_into(entry.value(), out, depth + 1);
  } else {
    throw Error(ErrorKind::Runtime, std::string("model output holds a ") + value.tagKind() +
                                        "; torchport carries tensors in tuples, lists and dicts");
  }
}

}  // namespace

void check_structure(const std::string& text, size_t outputs, const std::string& where) {
  const json node = json::parse(text);
  std::set<size_t> seen;
  check_node(node, outputs, seen, where);
  if (seen.size() != outputs) {
    bad(where, "uses " + std::to_string(seen.size()) + " of the " + std::to_string(outputs) + " outputs");
  }
}

c10::IValue build_structure(const std::string& text, const std::vector<at::Tensor>& outputs) {
  if (text.empty()) {
    if (outputs.size() == 1) return outputs[0];
    return c10::ivalue::Tuple::create(std::vector<c10::IValue>(outputs.begin(), outputs.end()));
  }
  return build(json::parse(text), outputs);
}

std::vector<at::Tensor> flatten_output(const c10::IValue& value) {
  std::vector<at::Tensor> out;
  flatten_into(value, out, 0);
  return out;
}

std::map<std::string, c10::IValue> parse_constants(const std::string& text) {
  std::map<std::string, c10::IValue> out;
  const json doc = json::parse(text);  // named: a temporary would die before the loop
  for (const auto& [name, v] : doc.items()) {
    if (v.is_boolean()) {
      out[name] = v.get<bool>();
    } else if (v.is_number_integer()) {
      out[name] = v.get<int64_t>();
    } else if (v.is_number_float()) {
      out[name] = v.get<double>();
    } else if (v.is_string()) {
      out[name] = v.get<std::string>();
    } else {
      out[name] = c10::IValue();
    }
  }
  return out;
}

}  // namespace torchport::detail
