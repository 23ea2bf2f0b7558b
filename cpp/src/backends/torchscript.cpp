// TorchScript archives (torch.jit.save), with torchport's files stored as
// extra files inside them.

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
  TorchScriptBackend(torch::jit::Module module, std::string path, bool optimize_graph)
      : module_(std::move(module)), path_(std::move(path)), optimize_graph_(optimize_graph) {}

  std::string format() const override { return "torchscript"; }

  std::vector<at::Tensor> forward(std::vector<at::Tensor> inputs) const override {
    std::vector<c10::IValue> args(inputs.begin(), inputs.end());
    // The executor reads this thread-local flag on every call: without
    // optimisation it runs one plan from the first call, never profiling.
    torch::jit::GraphOptimizerEnabledGuard optimize(optimize_graph_);
    c10::IValue result = module_.forward(std::move(args));
    return flatten(result);
  }

  Manifest signature() const override {
    Manifest m;
    const c10::FunctionSchema& schema = module_.get_method("forward").function().getSchema();
    const auto& args = schema.arguments();
    // The first argument is `self`.
    for (size_t i = 1; i < args.size(); ++i) {
      if (!args[i].type()->isSubtypeOf(*c10::TensorType::get())) {
        throw Error(ErrorKind::BadArtifact,
                    "forward() argument '" + args[i].name() + "' has type " +
                        args[i].type()->str() + "; torchport runs models whose inputs are tensors");
      }
      m.inputs.push_back(TensorSpec{args[i].name(), std::nullopt, std::nullopt});
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
  static std::vector<at::Tensor> flatten(const c10::IValue& value) {
    std::vector<at::Tensor> out;
    auto push = [&out](const c10::IValue& v, size_t index) {
      if (!v.isTensor()) {
        throw Error(ErrorKind::Runtime, "model output " + std::to_string(index) + " is a " +
                                            v.tagKind() + ", not a tensor");
      }
      out.push_back(v.toTensor());
    };
    if (value.isTensor()) {
      out.push_back(value.toTensor());
    } else if (value.isTuple()) {
      const auto& elements = value.toTupleRef().elements();
      for (size_t i = 0; i < elements.size(); ++i) push(elements[i], i);
    } else if (value.isList()) {
      auto list = value.toList();
      for (size_t i = 0; i < list.size(); ++i) push(list.get(i), i);
    } else {
      throw Error(ErrorKind::Runtime, std::string("model returned a ") + value.tagKind() +
                                          "; torchport expects a tensor or a tuple of tensors");
    }
    return out;
  }

  // forward() is not declared const but changes nothing in the module;
  // concurrent calls into one method are safe in the TorchScript interpreter.
  mutable torch::jit::Module module_;
  std::string path_;
  bool optimize_graph_;
};

}  // namespace

std::unique_ptr<Backend> open_torchscript(const std::string& path, std::shared_ptr<const std::string> bytes, bool optimize_graph,
                                          const c10::Device& device, bool for_inference) {
  torch::jit::Module module;
  try {
    module = torch::jit::load(memory_reader(bytes), device);
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
  if (for_inference) {
    // Export saved the frozen graph: the oneDNN layouts this pass adds hold
    // constants torch.jit.save cannot write, so it runs here, once per load.
    try {
      module = torch::jit::optimize_for_inference(module);
    } catch (const std::exception& e) {
      throw Error(ErrorKind::BadArtifact,
                  "'" + path + "' (optimize \"fast\"): optimize_for_inference failed: " + brief(e));
    }
  }
  return std::make_unique<TorchScriptBackend>(std::move(module), path, optimize_graph);
}

}  // namespace torchport::detail
