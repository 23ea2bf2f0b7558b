// ExecuTorch programs (.pte), run by ExecuTorch's own runtime inside this
// process (backends/executorch_program.cpp; docs/runtime.md says how it and
// LibTorch share the process). read_archive has split the file into the
// program and torchport's tail (pte.cpp); ExecuTorch's verifier checks the
// program before anything of it is used.
//
// ExecuTorch is optional at run time: its side lives in a plugin library
// (libtorchport_executorch.so, beside libtorchport_runtime.so) that is dlopened
// the first time a .pte is opened. A torchport without the plugin, or without
// the executorch package the plugin links, still runs every other format.

#include <dlfcn.h>
#include <sys/stat.h>

#include <ATen/ATen.h>

#include "backends/backend.h"
#include "backends/executorch_program.h"
#include "detail.h"
#include "pte.h"

namespace torchport::detail {
namespace {

constexpr const char* kInstallHint = "pip install 'torchport[executorch]'";

// The plugin's load function, or why there is none. Loaded once and never
// unloaded: the programs it makes keep their code in it.
struct Plugin {
  et::LoadProgram load = nullptr;
  std::string why_not;
};

std::string folder_of_runtime() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&folder_of_runtime), &info) == 0 || info.dli_fname == nullptr) return "";
  std::string path = info.dli_fname;
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash + 1);
}

Plugin open_plugin() {
  Plugin plugin;
  const std::string file = folder_of_runtime() + et::kPluginFile;
  struct stat st{};
  if (stat(file.c_str(), &st) != 0) {
    plugin.why_not = std::string("this torchport was built without ExecuTorch (no ") + et::kPluginFile +
                     " beside its runtime library): " + kInstallHint +
                     ", then rebuild torchport (pip install --no-build-isolation .)";
    return plugin;
  }
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    plugin.why_not = "its ExecuTorch plugin could not be loaded (" + std::string(error ? error : file) +
                     "); install ExecuTorch with " + kInstallHint;
    return plugin;
  }
  auto abi = reinterpret_cast<int (*)()>(dlsym(handle, et::kAbiSymbol));
  auto load = reinterpret_cast<et::LoadProgram>(dlsym(handle, et::kLoadSymbol));
  if (abi == nullptr || load == nullptr || abi() != et::kPluginAbi) {
    plugin.why_not = "'" + file + "' is not the ExecuTorch plugin of this torchport build (expected ABI " +
                     std::to_string(et::kPluginAbi) + ", got " + (abi ? std::to_string(abi()) : "none") +
                     "); reinstall torchport";
    return plugin;
  }
  plugin.load = load;
  return plugin;
}

const Plugin& plugin() {
  static const Plugin loaded = open_plugin();
  return loaded;
}

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

std::unique_ptr<Backend> open_executorch(const OpenRequest& request) {
  const std::string& path = request.path;
  const c10::Device& device = request.device;
  const Plugin& et_plugin = plugin();
  if (et_plugin.load == nullptr) {
    throw Error(ErrorKind::Unavailable,
                "'" + path + "' is an ExecuTorch program (.pte), but " + et_plugin.why_not);
  }
  if (!device.is_cpu()) {
    throw Error(ErrorKind::BadOption, "'" + path + "': an ExecuTorch program runs on the CPU in this runtime, "
                                      "but device '" + device.str() + "' was asked for");
  }
  const PteParts parts = split_pte(*request.bytes, "artifact '" + path + "'");
  // torchport's own walk first: ExecuTorch's verifier checks offsets, not
  // what its kernels take for granted (arguments, constants, plan size).
  check_pte_program(parts.program, "artifact '" + path + "'");
  try {
    std::unique_ptr<et::Program> program(et_plugin.load(parts.program.data(), parts.program.size(),
                                                        request.options.concurrency, "artifact '" + path + "'"));
    return std::make_unique<ExecutorchBackend>(request.bytes, std::move(program), path);
  } catch (const et::EtError& e) {
    throw Error(kind_of(e.fault), e.what());
  }
}

}  // namespace torchport::detail

namespace torchport {

bool with_executorch() { return detail::plugin().load != nullptr; }

}  // namespace torchport
