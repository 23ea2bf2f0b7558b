// ExecuTorch programs (.pte), run by ExecuTorch's own runtime inside this
// process (backends/executorch_program.cpp; docs/runtime.md says how it and
// LibTorch share the process). read_archive has split the file into the
// program and torchport's tail (pte.cpp); ExecuTorch's verifier checks the
// program before anything of it is used.

#include <ATen/ATen.h>

#include "backends/backend.h"
#include "detail.h"
#include "pte.h"

#ifdef TORCHPORT_WITH_EXECUTORCH
#include "backends/executorch_program.h"
#endif

namespace torchport {

bool with_executorch() {
#ifdef TORCHPORT_WITH_EXECUTORCH
  return true;
#else
  return false;
#endif
}

}  // namespace torchport

namespace torchport::detail {

#ifdef TORCHPORT_WITH_EXECUTORCH
namespace {

ErrorKind kind_of(et::Fault fault) {
  switch (fault) {
    case et::Fault::BadArtifact: return ErrorKind::BadArtifact;
    case et::Fault::BadInput: return ErrorKind::BadInput;
    case et::Fault::Runtime: break;
  }
  return ErrorKind::Runtime;
}

class ExecutorchBackend final : public Backend {
 public:
  ExecutorchBackend(std::shared_ptr<const std::string> bytes, std::unique_ptr<et::Program> program, std::string path)
      : bytes_(std::move(bytes)), program_(std::move(program)), path_(std::move(path)) {}

  std::string format() const override { return "executorch"; }

  std::vector<at::Tensor> forward(std::vector<at::Tensor> inputs) const override {
    std::vector<et::TensorIn> in;
    for (const auto& t : inputs) {
      if (!t.device().is_cpu()) {
        throw Error(ErrorKind::BadOption, "'" + path_ + "': ExecuTorch programs run on the CPU, got a tensor on " +
                                              t.device().str());
      }
      // Validated and contiguous (Model::run); ExecuTorch only reads it.
      in.push_back(et::TensorIn{t.data_ptr(), t.sizes().vec(), static_cast<int>(t.scalar_type())});
    }
    std::vector<at::Tensor> outputs;
    try {
      program_->run(in, [&](const et::TensorInfo& info, size_t nbytes) -> void* {
        auto out = at::empty(info.sizes, at::TensorOptions().dtype(static_cast<c10::ScalarType>(info.dtype)));
        if (static_cast<size_t>(out.nbytes()) != nbytes) {
          throw et::EtError(et::Fault::Runtime, "output " + std::to_string(outputs.size()) + ": " +
                                                    std::to_string(nbytes) + " bytes for " +
                                                    std::to_string(out.nbytes()) + " expected");
        }
        outputs.push_back(out);
        return out.data_ptr();
      });
    } catch (const et::EtError& e) {
      throw Error(kind_of(e.fault), "model '" + path_ + "': " + e.what());
    }
    return outputs;
  }

  Manifest signature() const override {
    Manifest m;
    m.name = "model";
    auto specs = [](const std::vector<et::TensorInfo>& infos, const char* one, const char* many) {
      std::vector<TensorSpec> out;
      for (size_t i = 0; i < infos.size(); ++i) {
        // Sizes are upper bounds, so only the dtype is the program's own rule.
        out.push_back(TensorSpec{infos.size() == 1 ? one : many + std::to_string(i),
                                 static_cast<c10::ScalarType>(infos[i].dtype), std::nullopt});
      }
      return out;
    };
    m.inputs = specs(program_->inputs(), "input", "input_");
    m.outputs = specs(program_->outputs(), "output", "output_");
    return m;
  }

 private:
  std::shared_ptr<const std::string> bytes_;  // the program reads from these bytes
  std::unique_ptr<et::Program> program_;
  std::string path_;
};

}  // namespace
#endif

std::unique_ptr<Backend> open_executorch(const std::string& path, std::shared_ptr<const std::string> bytes,
                                         const Options& options, const c10::Device& device) {
#ifdef TORCHPORT_WITH_EXECUTORCH
  if (!device.is_cpu()) {
    throw Error(ErrorKind::BadOption, "'" + path + "': an ExecuTorch program runs on the CPU in this runtime, "
                                      "but device '" + device.str() + "' was asked for");
  }
  const PteParts parts = split_pte(*bytes, "artifact '" + path + "'");
  // torchport's own walk first: ExecuTorch's verifier checks offsets, not
  // what its kernels take for granted (arguments, constants, plan size).
  check_pte_program(parts.program, "artifact '" + path + "'");
  try {
    auto program = et::load_program(parts.program.data(), parts.program.size(), options.concurrency,
                                    "artifact '" + path + "'");
    return std::make_unique<ExecutorchBackend>(std::move(bytes), std::move(program), path);
  } catch (const et::EtError& e) {
    throw Error(kind_of(e.fault), e.what());
  }
#else
  (void)bytes, (void)options, (void)device;
  throw Error(ErrorKind::Unavailable,
              "'" + path + "' is an ExecuTorch program (.pte), but this torchport runtime was built without "
              "ExecuTorch: pip install executorch==1.5.1 and rebuild (CMake option TORCHPORT_WITH_EXECUTORCH)");
#endif
}

}  // namespace torchport::detail
