// TorchScript archives (torch.jit.save), with torchport's files stored as
// extra files inside them.

#include <set>

#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include "backends/backend.h"
#include "backends/torchscript_submodules.h"
#include "detail.h"
#include "reader.h"

namespace torchport::detail {
namespace {

class TorchScriptBackend final : public Backend {
 public:
  TorchScriptBackend(torch::jit::Module module, std::string path, bool optimize_graph, const Manifest* manifest)
      : module_(std::move(module)), path_(std::move(path)), optimize_graph_(optimize_graph) {
    if (!manifest) return;
    // Non-tensor arguments travel by keyword; so do the inputs when every
    // input is named after a forward() argument (an input left out of the
    // example sits anywhere in the signature).
    std::set<std::string> params;
    const auto& args = module_.get_method("forward").function().getSchema().arguments();
    for (size_t i = 1; i < args.size(); ++i) params.insert(args[i].name());
    for (auto& [name, value] : parse_constants(manifest->constants_json)) {
      if (params.count(name)) constants_[name] = std::move(value);
    }
    by_name_ = !constants_.empty();
    for (const auto& spec : manifest->inputs) {
      input_names_.push_back(spec.name);
      by_name_ = by_name_ && params.count(spec.name);
    }
  }

  std::string format() const override { return "torchscript"; }

  std::vector<at::Tensor> forward(std::vector<at::Tensor> inputs) const override {
    return flatten_output(forward_ivalue(std::move(inputs)));
  }

  Manifest signature() const override {
    Manifest m;
    const c10::FunctionSchema& schema = module_.get_method("forward").function().getSchema();
    const auto& args = schema.arguments();
    // The first argument is `self`.
    for (size_t i = 1; i < args.size(); ++i) {
      if (constants_.count(args[i].name())) continue;  // given by the manifest on every call
      const bool tensor = args[i].type()->isSubtypeOf(*c10::TensorType::get());
      const bool optional_tensor = !tensor && args[i].type()->isSubtypeOf(*c10::OptionalType::ofTensor());
      if (!tensor && !optional_tensor) {
        if (args[i].default_value()) continue;  // keeps its default
        throw Error(ErrorKind::BadArtifact,
                    "forward() argument '" + args[i].name() + "' has type " + args[i].type()->str() +
                        " and no value in the manifest's constants; torchport runs models whose inputs are "
                        "tensors (or Optional tensors) and whose other arguments have defaults");
      }
      TensorSpec spec{args[i].name(), std::nullopt, std::nullopt};
      spec.optional = optional_tensor;
      m.inputs.push_back(std::move(spec));
    }
    const auto& returns = schema.returns();
    if (returns.size() == 1) {
      if (auto tuple = returns[0].type()->cast<c10::TupleType>()) {
        for (size_t i = 0; i < tuple->elements().size(); ++i) {
          m.outputs.push_back(TensorSpec{"output_" + std::to_string(i), std::nullopt, std::nullopt});
        }
      } else {
        m.outputs.push_back(TensorSpec{"output", std::nullopt, std::nullopt});
      }
    }
    m.name = module_.type()->name() ? module_.type()->name()->name() : "model";
    return m;
  }

  std::vector<SubmoduleInfo> submodules() const override { return list_submodules(module_); }

  c10::IValue run_submodule(const std::string& name, std::vector<c10::IValue> args,
                            const std::map<std::string, c10::IValue>& kwargs) const override {
    return call_submodule(module_, name, std::move(args), kwargs, path_);
  }

  std::map<std::string, at::Tensor> submodule_tensors(const std::string& name) const override {
    return detail::submodule_tensors(module_, name, path_);
  }

 private:
  // An undefined tensor is an optional input left out: forward() gets None.
  c10::IValue forward_ivalue(std::vector<at::Tensor> inputs) const {
    auto as_value = [](at::Tensor& t) { return t.defined() ? c10::IValue(std::move(t)) : c10::IValue(); };
    std::vector<c10::IValue> args;
    torch::jit::Kwargs kwargs(constants_.begin(), constants_.end());
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (by_name_ && i < input_names_.size()) {
        kwargs[input_names_[i]] = as_value(inputs[i]);
      } else {
        args.push_back(as_value(inputs[i]));
      }
    }
    // The executor reads this thread-local flag on every call: without
    // optimisation it runs one plan from the first call, never profiling.
    torch::jit::GraphOptimizerEnabledGuard optimize(optimize_graph_);
    return module_.get_method("forward")(std::move(args), kwargs);
  }

  // forward() is not declared const but changes nothing in the module;
  // concurrent calls into one method are safe in the TorchScript interpreter.
  mutable torch::jit::Module module_;
  std::string path_;
  std::map<std::string, c10::IValue> constants_;  // non-tensor arguments, by keyword
  std::vector<std::string> input_names_;
  bool by_name_ = false;
  bool optimize_graph_;
};

}  // namespace

std::unique_ptr<Backend> open_torchscript(const OpenRequest& request) {
  const std::string& path = request.path;
  const auto& bytes = request.bytes;
  const Manifest* manifest = request.manifest;
  const std::string& level = request.options.optimize;
  torch::jit::Module module;
  try {
    module = torch::jit::load(memory_reader(bytes), request.device);
  } catch (const std::bad_alloc&) {
    throw Error(ErrorKind::BadArtifact, "'" + path + "' holds more data than can be allocated");
  } catch (const std::exception& e) {
    // A missing operator library is not a broken artifact; say which.
    const auto missing = unregistered_operators(bytes);
    if (!missing.empty()) throw Error(ErrorKind::BadArtifact, missing_operators_message(path, missing));
    throw Error(ErrorKind::BadArtifact,
                "'" + path + "' is not a loadable TorchScript archive: " + brief(e));
  }
  // The model's own tensors come from the file too: none may reach past its storage.
  for (const auto& attribute : module.named_attributes(/*recurse=*/true)) {
    if (attribute.value.isTensor()) {
      check_in_bounds(attribute.value.toTensor(), "'" + path + "' tensor '" + attribute.name + "'",
                      ErrorKind::BadArtifact);
    }
  }
  if (!module.find_method("forward")) {
    throw Error(ErrorKind::BadArtifact, "'" + path + "' has no forward() method");
  }
  module.eval();
  const std::string exported = manifest ? manifest->optimize : "";
  if (exported == "fast" || level == "fast") {
    // Export saved the frozen graph: the oneDNN layouts this pass adds hold
    // constants torch.jit.save cannot write, so it runs here, once per load
    // (and freezes first when the artifact was not frozen at export).
    try {
      module = torch::jit::optimize_for_inference(module);
    } catch (const std::exception& e) {
      const std::string who = exported == "fast" ? "'" + path + "' (optimize \"fast\")"
                                                 : "optimize \"fast\" at load of '" + path + "'";
      throw Error(exported == "fast" ? ErrorKind::BadArtifact : ErrorKind::BadOption,
                  who + ": optimize_for_inference failed: " + brief(e));
    }
  } else if (level == "freeze" && exported != "freeze") {
    try {
      module = torch::jit::freeze(module);
    } catch (const std::exception& e) {
      throw Error(ErrorKind::BadOption, "optimize \"freeze\" at load of '" + path + "': " + brief(e));
    }
  }
  return std::make_unique<TorchScriptBackend>(std::move(module), path, request.options.optimize_graph, manifest);
}

}  // namespace torchport::detail
