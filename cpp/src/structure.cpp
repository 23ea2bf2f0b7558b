// Structured outputs: how a model's nested return value (tuples, named tuples,
// lists, dicts) maps onto the manifest's flat, named outputs, and back. The one
// place for output order, output names and the "structure" tree: export calls
// describe_outputs through the binding, the runtime the rest.
//
// The manifest's "structure" is a tree whose leaves are output indices:
//   0                                        outputs[0]
//   {"type": "tuple", "items": [...]}        a tuple
//   {"type": "tuple", "class": "Pair", "keys": [...], "items": [...]}  a named tuple
//   {"type": "list", "items": [...]}         a list of this length
//   {"type": "list", "per": "batch", "item": ...}  a list with one item per
//                                            batch element (schema 3); the item's
//                                            outputs are listed once, their names
//                                            hold "*" for the position
//   {"type": "dict", "keys": [...], "items": [...]}  a dict with string keys, in that order
// A dict or named tuple may carry "class" (a ModelOutput's class name); it is
// informative only: nothing is imported or run from it.
//
// A call's flat outputs are the tree's leaves depth first, a per-batch list's
// item repeated once per batch element: 3 + B x 2 outputs for
// {"type": "tuple", "items": [0, {"type": "list", "per": "batch", "item": ...two leaves...}, 3, 4]}.

#include <algorithm>
#include <optional>
#include <set>

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/core/jit_type.h>
#include <nlohmann/json.hpp>

#include <torchport/tools.h>

#include "detail.h"

namespace torchport {
namespace detail {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw Error(ErrorKind::BadArtifact, where + ": " + what);
}

bool is_per_batch(const json& node) { return node.is_object() && node.contains("per"); }

// Checks a node; `leaves` gets its output indices depth first, `per_leaves`
// those under a per-batch list.
void check_node(const json& node, size_t outputs, std::vector<size_t>& leaves, std::set<size_t>& per_leaves,
                bool in_item, const std::string& where) {
  if (node.is_number_integer()) {
    const int64_t i = node.get<int64_t>();
    if (i < 0 || static_cast<size_t>(i) >= outputs) {
      bad(where, "leaf " + std::to_string(i) + " is not an output index (0 to " + std::to_string(outputs - 1) + ")");
    }
    for (const size_t seen : leaves) {
      if (seen == static_cast<size_t>(i)) bad(where, "output " + std::to_string(i) + " appears twice");
    }
    leaves.push_back(static_cast<size_t>(i));
    if (in_item) per_leaves.insert(static_cast<size_t>(i));
    return;
  }
  if (!node.is_object()) bad(where, "a node must be an output index or {type, items}, got " + node.dump());
  auto type = node.find("type");
  if (type == node.end() || !type->is_string() ||
      (*type != "tuple" && *type != "list" && *type != "dict")) {
    bad(where, "'type' must be \"tuple\", \"list\" or \"dict\"");
  }
  if (auto per = node.find("per"); per != node.end()) {
    // {"type": "list", "per": "batch", "item": node}
    if (*per != "batch") bad(where, "'per' must be \"batch\", got " + per->dump());
    if (*type != "list") bad(where, "only a list may have one item per batch element, got a " + type->get<std::string>());
    if (in_item) bad(where, "a list per batch element nests inside another one's item");
    if (node.contains("items") || node.contains("keys") || node.contains("class")) {
      bad(where, "a list per batch element has one 'item', no 'items', 'keys' or 'class'");
    }
    auto item = node.find("item");
    if (item == node.end()) bad(where, "a list per batch element needs its 'item'");
    const size_t before = leaves.size();
    check_node(*item, outputs, leaves, per_leaves, /*in_item=*/true, where);
    if (leaves.size() == before) bad(where, "the 'item' of a list per batch element holds no output");
    return;
  }
  if (node.contains("item")) bad(where, "'item' belongs to a list per batch element (\"per\": \"batch\")");
  auto items = node.find("items");
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
  for (const json& item : *items) check_node(item, outputs, leaves, per_leaves, in_item, where);
}

// One flat output of a call: its output spec, and its batch element (-1
// outside per-batch lists).
struct Slot {
  size_t spec;
  int64_t element;
};

void count_leaves(const json& node, size_t& fixed, size_t& per_item, bool in_item) {
  if (node.is_number_integer()) {
    (in_item ? per_item : fixed) += 1;
  } else if (is_per_batch(node)) {
    count_leaves(node["item"], fixed, per_item, true);
  } else {
    for (const json& item : node["items"]) count_leaves(item, fixed, per_item, in_item);
  }
}

void expand(const json& node, int64_t batch, int64_t element, std::vector<Slot>& out) {
  if (node.is_number_integer()) {
    out.push_back({node.get<size_t>(), element});
  } else if (is_per_batch(node)) {
    for (int64_t b = 0; b < batch; ++b) expand(node["item"], batch, b, out);
  } else {
    for (const json& item : node["items"]) expand(item, batch, element, out);
  }
}

// The slots of a call's `count` flat outputs.
std::vector<Slot> slots(const std::string& text, size_t count) {
  std::vector<Slot> out;
  const json node = text.empty() ? json() : json::parse(text);
  size_t fixed = 0, per_item = 0;
  if (!text.empty()) count_leaves(node, fixed, per_item, false);
  if (per_item == 0) {  // leaf i is output i
    for (size_t i = 0; i < count; ++i) out.push_back({i, -1});
    return out;
  }
  if (count < fixed || (count - fixed) % per_item != 0) {
    throw Error(ErrorKind::Runtime, "got " + std::to_string(count) + " outputs; the manifest's structure expects " +
                                        std::to_string(fixed) + " + batch x " + std::to_string(per_item));
  }
  expand(node, static_cast<int64_t>((count - fixed) / per_item), -1, out);
  return out;
}

c10::IValue build(const json& node, const std::vector<at::Tensor>& outputs, size_t& next, int64_t batch) {
  if (node.is_number_integer()) {
    // Leaf i is output i, unless a per-batch list repeats items: then the call's
    // outputs are taken in order (such manifests number their leaves in order).
    return batch < 0 ? outputs.at(node.get<size_t>()) : outputs.at(next++);
  }
  std::vector<c10::IValue> items;
  if (is_per_batch(node)) {
    for (int64_t b = 0; b < batch; ++b) items.push_back(build(node["item"], outputs, next, batch));
  } else {
    for (const json& item : node["items"]) items.push_back(build(item, outputs, next, batch));
  }
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

// An IValue a TorchScript model returned, as a ValueTree (tensors shared).
ValueTree to_tree(const c10::IValue& value, int depth) {
  ValueTree node;
  if (depth > kMaxOutputDepth) {
    node.kind = "value nested more than " + std::to_string(kMaxOutputDepth) + " levels deep";
  } else if (value.isTensor()) {
    node.kind = "tensor";
    node.tensor = value.toTensor();
  } else if (value.isTuple()) {
    node.kind = "tuple";
    for (const auto& v : value.toTupleRef().elements()) node.items.push_back(to_tree(v, depth + 1));
  } else if (value.isList()) {
    node.kind = "list";
    for (const auto& v : value.toListRef()) node.items.push_back(to_tree(v, depth + 1));
  } else if (value.isGenericDict()) {
    node.kind = "dict";
    for (const auto& entry : value.toGenericDict()) {
      node.keys.push_back(entry.key().isString() ? entry.key().toStringRef() : "");
      node.items.push_back(to_tree(entry.value(), depth + 1));
    }
  } else {
    node.kind = value.tagKind();
  }
  return node;
}

void collect(const ValueTree& node, std::vector<at::Tensor>& out) {
  if (node.kind == "tensor") {
    out.push_back(node.tensor);
  } else if (node.kind == "tuple" || node.kind == "list" || node.kind == "dict") {
    for (const auto& item : node.items) collect(item, out);
  } else {
    throw Error(ErrorKind::Runtime, "model output holds a " + node.kind +
                                        "; torchport carries tensors in tuples, lists and dicts");
  }
}

// describe_outputs' walk: the structure tree, with names and tensors in order.
struct Describer {
  int64_t batch = -1, other_batch = -1;
  std::vector<at::Tensor> tensors;
  std::vector<std::string> names;
  std::vector<size_t> specs;
  bool per_batch = false;

  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }
  // Positions: "output_0" at the top, "hidden_states.0" below.
  static std::string position(const std::string& path, const std::string& index) {
    return path.empty() ? "output_" + index : path + "." + index;
  }

  json leaf(const at::Tensor& t, const std::string& path) {
    tensors.push_back(t);
    names.push_back(path.empty() ? "output" : path);
    specs.push_back(names.size() - 1);
    return json(names.size() - 1);
  }

  json walk(const ValueTree& v, const ValueTree* other, const std::string& path, int depth) {
    const std::string where = path.empty() ? "the output" : "output '" + path + "'";
    if (depth > kMaxOutputDepth) {
      throw Error(ErrorKind::BadOption, where + ": nests more than " + std::to_string(kMaxOutputDepth) + " levels deep");
    }
    if (v.kind == "tensor") return leaf(v.tensor, path);
    const bool same_kind = other && other->kind == v.kind && other->items.size() == v.items.size() &&
                           other->keys == v.keys;
    if (v.kind == "dict" || (v.kind == "tuple" && !v.type_name.empty() && !v.keys.empty())) {
      // A key that is not a string stands as "" in `keys`, its repr in `non_string_keys`.
      std::vector<std::string> refused = v.non_string_keys;
      const auto empty = std::count(v.keys.begin(), v.keys.end(), std::string());
      for (auto i = static_cast<int64_t>(v.non_string_keys.size()); i < empty; ++i) refused.push_back("''");
      if (!refused.empty()) {
        std::string list;
        for (const auto& k : refused) list += (list.empty() ? "" : ", ") + k;
        throw Error(ErrorKind::BadOption, where + ": dict keys must be non-empty strings, got [" + list + "]");
      }
      if (v.keys.size() != v.items.size()) throw Error(ErrorKind::BadOption, where + ": keys and items differ in number");
      json node = {{"type", v.kind}};
      if (!v.type_name.empty()) node["class"] = v.type_name;
      node["keys"] = v.keys;
      node["items"] = json::array();
      for (size_t i = 0; i < v.items.size(); ++i) {
        node["items"].push_back(walk(v.items[i], same_kind ? &other->items[i] : nullptr, join(path, v.keys[i]), depth + 1));
      }
      return node;
    }
    if (v.kind == "tuple" || v.kind == "list") {
      if (v.items.empty()) {
        throw Error(ErrorKind::BadOption, where + ": is an empty " + v.kind + ", which holds no tensor to carry");
      }
      if (v.kind == "list" && other && other->kind == "list" && batch > 0 && other_batch >= 0 &&
          batch != other_batch && static_cast<int64_t>(v.items.size()) == batch &&
          static_cast<int64_t>(other->items.size()) == other_batch) {
        if (auto node = per_batch_list(v, *other, path, depth)) return *node;
      }
      json node = {{"type", v.kind}, {"items", json::array()}};
      for (size_t i = 0; i < v.items.size(); ++i) {
        node["items"].push_back(
            walk(v.items[i], same_kind ? &other->items[i] : nullptr, position(path, std::to_string(i)), depth + 1));
      }
      return node;
    }
    throw Error(ErrorKind::BadOption,
                where + " is " + (v.kind == "None" ? std::string("None") : "a " + v.kind) +
                    "; torchport exports tensors, alone or nested in tuples, named tuples, lists, dicts and "
                    "dataclasses (ModelOutput)");
  }

  // A list as long as the batch, here and at the other batch, whose items all
  // share one structure (names, dtypes and ranks): one item per batch element.
  std::optional<json> per_batch_list(const ValueTree& v, const ValueTree& other, const std::string& path, int depth) {
    const std::string item_path = position(path, "*");
    auto signature = [&](const ValueTree& item) -> std::optional<std::string> {
      Describer d;
      try {
        json node = d.walk(item, nullptr, item_path, depth + 1);
        std::string sig = node.dump();
        for (size_t i = 0; i < d.names.size(); ++i) {
          sig += "\n" + d.names[i] + " " + dtype_name(d.tensors[i].scalar_type()) + " " + std::to_string(d.tensors[i].dim());
        }
        return sig;
      } catch (const Error&) {
        return std::nullopt;  // walked as a plain list below, which names the culprit by its position
      }
    };
    const auto first = signature(v.items[0]);
    if (!first) return std::nullopt;
    for (const auto* list : {&v, &other}) {
      for (const auto& item : list->items) {
        if (signature(item) != first) return std::nullopt;
      }
    }
    const size_t start = names.size();
    json item = walk(v.items[0], nullptr, item_path, depth + 1);
    const size_t end = names.size();
    for (size_t s = start; s < end; ++s) {
      if (std::count(names[s].begin(), names[s].end(), '*') != 1) {
        throw Error(ErrorKind::BadOption, "output '" + names[s] + "': a dict key holds '*', which stands for the "
                                          "position in a list per batch element");
      }
    }
    for (size_t b = 1; b < v.items.size(); ++b) {
      std::vector<at::Tensor> more;
      collect(v.items[b], more);
      for (size_t i = 0; i < more.size(); ++i) {
        tensors.push_back(more[i]);
        specs.push_back(start + i);
      }
    }
    per_batch = true;
    return json{{"type", "list"}, {"per", "batch"}, {"item", item}};
  }
};

}  // namespace

void check_structure(const Manifest& m, const std::string& where) {
  const json node = json::parse(m.structure_json);
  std::vector<size_t> leaves;
  std::set<size_t> per_leaves;
  check_node(node, m.outputs.size(), leaves, per_leaves, false, where);
  if (leaves.size() != m.outputs.size()) {
    bad(where, "uses " + std::to_string(leaves.size()) + " of the " + std::to_string(m.outputs.size()) + " outputs");
  }
  if (per_leaves.empty()) return;
  // A list per batch element: what an older runtime cannot read must say so.
  if (m.schema < 3) bad(where, "a list per batch element needs schema 3, the manifest says " + std::to_string(m.schema));
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (leaves[i] != i) bad(where, "with a list per batch element, the leaves must number the outputs in order (0, 1, ...)");
  }
  bool batch_input = false;
  for (const auto& spec : m.inputs) {
    if (!spec.optional && std::find(spec.dim_names.begin(), spec.dim_names.end(), "batch") != spec.dim_names.end()) {
      batch_input = true;
    }
  }
  if (!batch_input) bad(where, "a list per batch element needs an input with a dim named \"batch\", and none has one");
  // "*" in an item's names stands for the position; expanded names stay unique.
  for (size_t i = 0; i < m.outputs.size(); ++i) {
    const std::string& name = m.outputs[i].name;
    const auto stars = std::count(name.begin(), name.end(), '*');
    if (per_leaves.count(i) && stars != 1) {
      bad(where, "output '" + name + "' is in a list per batch element; its name must hold one '*' (the position)");
    }
    if (per_leaves.count(i)) continue;
    for (const size_t p : per_leaves) {
      const std::string& pattern = m.outputs[p].name;
      const size_t star = pattern.find('*');
      const std::string head = pattern.substr(0, star), tail = pattern.substr(star + 1);
      if (name.size() > head.size() + tail.size() && name.compare(0, head.size(), head) == 0 &&
          name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
          name.substr(head.size(), name.size() - head.size() - tail.size()).find_first_not_of("0123456789") ==
              std::string::npos) {
        bad(where, "output '" + name + "' has the name output '" + pattern + "' takes for one batch element");
      }
    }
  }
}

bool per_batch_counts(const std::string& text, size_t& fixed, size_t& per_item) {
  fixed = per_item = 0;
  if (text.empty()) return false;
  count_leaves(json::parse(text), fixed, per_item, false);
  return per_item > 0;
}

c10::IValue build_structure(const std::string& text, const std::vector<at::Tensor>& outputs) {
  if (text.empty()) {
    if (outputs.size() == 1) return outputs[0];
    return c10::ivalue::Tuple::create(std::vector<c10::IValue>(outputs.begin(), outputs.end()));
  }
  size_t fixed = 0, per_item = 0;
  const bool per_batch = per_batch_counts(text, fixed, per_item);
  int64_t batch = -1;
  if (per_batch) {
    slots(text, outputs.size());  // throws when the count does not fit
    batch = static_cast<int64_t>((outputs.size() - fixed) / per_item);
  }
  size_t next = 0;
  return build(json::parse(text), outputs, next, batch);
}

std::vector<at::Tensor> flatten_output(const c10::IValue& value) {
  std::vector<at::Tensor> out;
  collect(to_tree(value, 0), out);
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

}  // namespace detail

std::vector<std::string> Manifest::output_names_for(size_t count) const {
  // A call's outputs are tensors it returned; a count beyond this is a caller's mistake, not a model.
  constexpr size_t kMaxOutputs = 1'000'000;
  if (count > kMaxOutputs) {
    throw Error(ErrorKind::BadOption, "output count " + std::to_string(count) + " is more than the limit of " +
                                          std::to_string(kMaxOutputs));
  }
  std::vector<std::string> out;
  for (const auto& slot : detail::slots(structure_json, count)) {
    if (slot.spec >= outputs.size()) {
      out.push_back("output_" + std::to_string(out.size()));  // a derived contract that does not list them
      continue;
    }
    std::string name = outputs[slot.spec].name;
    if (slot.element >= 0) name.replace(name.find('*'), 1, std::to_string(slot.element));
    out.push_back(std::move(name));
  }
  return out;
}

std::vector<size_t> OutputLayout::specs_for(size_t count) const {
  std::vector<size_t> out;
  for (const auto& slot : detail::slots(structure_json, count)) out.push_back(slot.spec);
  return out;
}

OutputLayout describe_outputs(const ValueTree& value, int64_t batch, const ValueTree* at_other_batch,
                              int64_t other_batch) {
  detail::Describer d;
  d.batch = batch;
  d.other_batch = other_batch;
  const nlohmann::json structure = d.walk(value, at_other_batch, "", 0);
  OutputLayout layout;
  // One tensor, or a flat tuple: the layouts every runtime has always returned.
  bool flat = structure.is_number_integer();
  if (structure.is_object() && structure["type"] == "tuple" && !structure.contains("keys")) {
    flat = std::all_of(structure["items"].begin(), structure["items"].end(),
                       [](const nlohmann::json& i) { return i.is_number_integer(); });
  }
  layout.structure_json = flat ? "" : structure.dump();
  layout.schema = d.per_batch ? 3 : 2;
  layout.tensors = std::move(d.tensors);
  layout.names = std::move(d.names);
  layout.specs = std::move(d.specs);
  return layout;
}

}  // namespace torchport
