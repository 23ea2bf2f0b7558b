// Submodules of a TorchScript module for the divergence localiser, and the
// operators an archive calls that this process has not registered.

#include "backends/torchscript_submodules.h"

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/runtime/operator.h>

#include "detail.h"
#include "reader.h"

namespace torchport::detail {
namespace {

std::string type_name(const torch::jit::Module& m) {
  const auto& qualified = m.type()->name();
  return qualified ? qualified->name() : "Module";
}

void collect_custom_ops(const torch::jit::Block* block, std::set<std::string>& out) {
  for (const torch::jit::Node* node : block->nodes()) {
    const c10::Symbol kind = node->kind();
    // Graph nodes are aten:: and prim:: builtins, plus whatever a loaded
    // library registered under its own namespace.
    if (!kind.is_aten() && !kind.is_prim()) out.insert(kind.toQualString());
    for (const torch::jit::Block* inner : node->blocks()) collect_custom_ops(inner, out);
  }
}

std::vector<std::string> custom_ops(const torch::jit::Module& m) {
  const auto method = m.find_method("forward");
  if (!method) return {};
  // Calls into child modules and helper functions are inlined on a copy, so
  // an op used by a callee counts for its caller too.
  auto graph = torch::jit::toGraphFunction(method->function()).graph()->copy();
  torch::jit::Inline(*graph);
  std::set<std::string> ops;
  collect_custom_ops(graph->block(), ops);
  return {ops.begin(), ops.end()};
}

std::string child_names(const torch::jit::Module& m) {
  std::string names;
  for (const auto& child : m.named_children()) names += (names.empty() ? "" : ", ") + child.name;
  return names.empty() ? "none" : names;
}

// The submodule at a dotted path, or BadOption naming the first missing part.
torch::jit::Module find(const torch::jit::Module& root, const std::string& name, const std::string& path) {
  torch::jit::Module current = root;
  std::string reached;
  std::istringstream parts(name);
  std::string part;
  while (std::getline(parts, part, '.')) {
    bool found = false;
    for (const auto& child : current.named_children()) {
      if (child.name == part) {
        current = child.value;
        found = true;
        break;
      }
    }
    if (!found) {
      throw Error(ErrorKind::BadOption,
                  "submodule '" + name + "': '" + path + "' has no submodule '" +
                      (reached.empty() ? part : reached + "." + part) + "' (" +
                      (reached.empty() ? "the model" : "'" + reached + "'") + " has: " +
                      child_names(current) + ")");
    }
    reached = reached.empty() ? part : reached + "." + part;
  }
  return current;
}

}  // namespace

std::vector<SubmoduleInfo> list_submodules(const torch::jit::Module& root) {
  std::vector<SubmoduleInfo> out;
  for (const auto& item : root.named_modules()) {
    if (item.name.empty()) continue;  // the model itself
    SubmoduleInfo info;
    info.name = item.name;
    info.type = type_name(item.value);
    info.callable = item.value.find_method("forward").has_value();
    info.custom_ops = custom_ops(item.value);
    out.push_back(std::move(info));
  }
  return out;
}

c10::IValue call_submodule(const torch::jit::Module& root, const std::string& name,
                           std::vector<c10::IValue> args,
                           const std::map<std::string, c10::IValue>& kwargs,
                           const std::string& path) {
  torch::jit::Module m = name.empty() ? root : find(root, name, path);
  const auto method = m.find_method("forward");
  if (!method) {
    throw Error(ErrorKind::BadOption,
                "submodule '" + name + "' (" + type_name(m) + ") in '" + path +
                    "' has no forward() to call (a traced model keeps forward() only for the "
                    "submodules the trace called)");
  }
  torch::jit::Kwargs named(kwargs.begin(), kwargs.end());
  try {
    return (*method)(std::move(args), named);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Runtime,
                "submodule '" + name + "' (" + type_name(m) + ") failed: " + brief(e));
  }
}

std::map<std::string, at::Tensor> submodule_tensors(const torch::jit::Module& root,
                                                    const std::string& name,
                                                    const std::string& path) {
  torch::jit::Module m = name.empty() ? root : find(root, name, path);
  std::map<std::string, at::Tensor> out;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) out[p.name] = p.value;
  for (const auto& b : m.named_buffers(/*recurse=*/true)) out[b.name] = b.value;
  return out;
}

std::vector<std::string> unregistered_operators(std::shared_ptr<const std::string> bytes) {
  std::set<std::string> missing;
  try {
    caffe2::serialize::PyTorchStreamReader reader(memory_reader(std::move(bytes)));
    // Serialized TorchScript code calls operators outside torch's own
    // namespace as "ops.<namespace>.<name>(...)".
    static const std::regex call(R"(\bops\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*))");
    for (const auto& record : reader.getAllRecords()) {
      if (record.rfind("code/", 0) != 0 || record.size() < 3 ||
          record.compare(record.size() - 3, 3, ".py") != 0) {
        continue;
      }
      auto [data, size] = reader.getRecord(record);
      const std::string code(static_cast<const char*>(data.get()), size);
      for (std::sregex_iterator it(code.begin(), code.end(), call), end; it != end; ++it) {
        const std::string op = (*it)[1].str() + "::" + (*it)[2].str();
        if (torch::jit::getAllOperatorsFor(c10::Symbol::fromQualString(op)).empty()) missing.insert(op);
      }
    }
  } catch (const std::exception&) {
    return {};  // not a readable archive: the caller reports the load error as it is
  }
  return {missing.begin(), missing.end()};
}

std::string missing_operators_message(const std::string& path, const std::vector<std::string>& ops) {
  std::string list, namespaces;
  std::set<std::string> seen;
  for (const auto& op : ops) {
    const std::string ns = op.substr(0, op.find("::"));
    list += (list.empty() ? "" : ", ") + op + " (namespace " + ns + ")";
    if (seen.insert(ns).second) namespaces += (namespaces.empty() ? "" : ", ") + ns;
  }
  return "'" + path + "' calls " + (ops.size() == 1 ? "an operator" : "operators") + " that no loaded library registers: " +
         list + ". The artifact is fine; load the shared library that defines the " + namespaces +
         " operators first: torchport-run --load-library PATH, Options::libraries in C++, or "
         "NativeModel(..., libraries=[PATH]) in Python";
}

}  // namespace torchport::detail
