#pragma once
// The ExecuTorch side of the .pte backend, behind plain C++ types. ExecuTorch
// ships its own copy of c10's headers (runtime/core/portable_type/c10), which
// must not meet LibTorch's in one translation unit, so executorch_program.cpp
// includes only ExecuTorch and executorch.cpp only LibTorch; they meet here.
// executorch_program.cpp is built into its own plugin library, which the
// runtime loads with dlopen (executorch.cpp), so the runtime, the Python module
// and torchport-run carry no link to ExecuTorch.

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace torchport::detail::et {

/// What went wrong, in torchport's terms (executorch.cpp maps it to ErrorKind).
enum class Fault { BadArtifact, BadInput, Runtime };

struct EtError : std::runtime_error {
  EtError(Fault fault, const std::string& message) : std::runtime_error(message), fault(fault) {}
  Fault fault;
};

/// dtypes are c10::ScalarType values: ExecuTorch numbers its ScalarType the same way.
struct TensorInfo {
  std::vector<int64_t> sizes;
  int dtype = 0;
};

struct TensorIn {
  void* data = nullptr;  ///< contiguous; only read
  std::vector<int64_t> sizes;
  int dtype = 0;
};

/// Gives the memory (nbytes of it) an output of `info`'s shape and dtype is copied into.
using Allocate = std::function<void*(const TensorInfo& info, size_t nbytes)>;

/// A verified ExecuTorch program and a pool of loaded "forward" methods.
class Program {
 public:
  virtual ~Program() = default;
  /// Inputs and outputs of "forward"; sizes are the upper bounds of dynamic dims.
  virtual const std::vector<TensorInfo>& inputs() const = 0;
  virtual const std::vector<TensorInfo>& outputs() const = 0;
  /// Runs "forward" on a free method of the pool (waits for one); thread-safe.
  virtual void run(const std::vector<TensorIn>& inputs, const Allocate& allocate) const = 0;
};

/// Loads the program in `data` (which must outlive it) with ExecuTorch's
/// verifier, and `concurrency` methods. `where` names the file in errors.
std::unique_ptr<Program> load_program(const void* data, size_t size, int concurrency, const std::string& where);

/// The plugin library (libtorchport_executorch.so) that holds load_program and
/// links ExecuTorch's libraries; the runtime dlopens it when a .pte is opened,
/// so nothing else in torchport needs ExecuTorch installed.
constexpr const char* kPluginFile = "libtorchport_executorch.so";
/// Bumped whenever Program, TensorInfo, TensorIn, EtError or LoadProgram change.
constexpr int kPluginAbi = 1;
/// The plugin's two entry points (extern "C", found with dlsym).
constexpr const char* kAbiSymbol = "torchport_executorch_abi";
constexpr const char* kLoadSymbol = "torchport_executorch_load_program";
using LoadProgram = Program* (*)(const void* data, size_t size, int concurrency, const std::string& where);

}  // namespace torchport::detail::et
