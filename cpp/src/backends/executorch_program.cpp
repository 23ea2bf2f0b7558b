// ExecuTorch's runtime (libexecutorch and its kernel and XNNPACK libraries from
// the executorch wheel) running a .pte's "forward". No LibTorch header here: see
// executorch_program.h.

#include "backends/executorch_program.h"

#include <condition_variable>
#include <cstring>
#include <mutex>

#include <executorch/extension/data_loader/buffer_data_loader.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr_maker.h>
#include <executorch/runtime/executor/program.h>
#include <executorch/runtime/platform/platform.h>
#include <executorch/runtime/platform/runtime.h>

namespace torchport::detail::et {
namespace {

namespace rt = executorch::runtime;
using executorch::extension::BufferDataLoader;
using executorch::extension::Module;

constexpr const char* kMethod = "forward";

// ExecuTorch logs to stderr by default; only its errors are worth a user's
// screen (torchport reports failures itself, with the file's name).
void emit_log(et_timestamp_t, et_pal_log_level_t level, const char* filename, const char*, size_t line,
              const char* message, size_t length) {
  if (level != kError && level != kFatal) return;
  std::fprintf(stderr, "[executorch %s:%zu] %.*s\n", filename, line, static_cast<int>(length), message);
}

void init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    rt::register_pal(rt::PalImpl::create(emit_log, __FILE__));
    rt::runtime_init();
  });
}

std::string code(rt::Error e) { return "ExecuTorch error " + std::to_string(static_cast<int>(e)); }

TensorInfo info_of(const rt::TensorInfo& t) {
  TensorInfo info;
  for (auto s : t.sizes()) info.sizes.push_back(s);
  info.dtype = static_cast<int>(t.scalar_type());
  return info;
}

std::string shape(const std::vector<int64_t>& sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

class PooledProgram final : public Program {
 public:
  PooledProgram(std::unique_ptr<BufferDataLoader> loader, std::shared_ptr<rt::Program> program, int concurrency,
                const std::string& where)
      : loader_(std::move(loader)), program_(std::move(program)), where_(where) {
    auto meta = program_->method_meta(kMethod);
    if (!meta.ok()) {
      throw EtError(Fault::BadArtifact, where + ": the ExecuTorch program has no method 'forward' (" +
                                            code(meta.error()) + ")");
    }
    for (size_t i = 0; i < meta->num_inputs(); ++i) {
      auto t = meta->input_tensor_meta(i);
      if (!t.ok()) throw EtError(Fault::BadArtifact, where + ": input " + std::to_string(i) + " of 'forward' is not a tensor");
      inputs_.push_back(info_of(*t));
    }
    for (size_t i = 0; i < meta->num_outputs(); ++i) {
      auto t = meta->output_tensor_meta(i);
      if (!t.ok()) throw EtError(Fault::BadArtifact, where + ": output " + std::to_string(i) + " of 'forward' is not a tensor");
      outputs_.push_back(info_of(*t));
    }
    for (int i = 0; i < concurrency; ++i) {
      auto module = std::make_unique<Module>(program_);
      const rt::Error e = module->load_method(kMethod);
      if (e != rt::Error::Ok) {
        // Kernels or delegates the program needs and this runtime lacks end here.
        throw EtError(Fault::BadArtifact, where + ": ExecuTorch cannot load method 'forward' (" + code(e) +
                                              "; an operator or delegate this runtime lacks, or a corrupted program)");
      }
      free_.push_back(module.get());
      modules_.push_back(std::move(module));
    }
  }

  const std::vector<TensorInfo>& inputs() const override { return inputs_; }
  const std::vector<TensorInfo>& outputs() const override { return outputs_; }

  void run(const std::vector<TensorIn>& inputs, const Allocate& allocate) const override {
    if (inputs.size() != inputs_.size()) {
      throw EtError(Fault::BadInput, where_ + ": 'forward' takes " + std::to_string(inputs_.size()) +
                                         " inputs, got " + std::to_string(inputs.size()));
    }
    std::vector<executorch::extension::TensorPtr> tensors;
    std::vector<rt::EValue> values;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto& in = inputs[i];
      const auto& bound = inputs_[i].sizes;
      if (in.dtype != inputs_[i].dtype || in.sizes.size() != bound.size()) {
        throw EtError(Fault::BadInput, "input " + std::to_string(i) + ": the ExecuTorch program expects dtype " +
                                           std::to_string(inputs_[i].dtype) + " and " + std::to_string(bound.size()) +
                                           " dims, got dtype " + std::to_string(in.dtype) + " and " +
                                           std::to_string(in.sizes.size()));
      }
      std::vector<executorch::aten::SizesType> sizes;
      for (size_t d = 0; d < bound.size(); ++d) {
        // The program's memory is planned for these upper bounds (export's Dim max).
        if (in.sizes[d] > bound[d]) {
          throw EtError(Fault::BadInput, "input " + std::to_string(i) + ": dim " + std::to_string(d) + " is " +
                                             std::to_string(in.sizes[d]) + ", the ExecuTorch program was exported for at most " +
                                             std::to_string(bound[d]) + " (shape " + shape(in.sizes) + ", bound " +
                                             shape(bound) + ")");
        }
        sizes.push_back(static_cast<executorch::aten::SizesType>(in.sizes[d]));
      }
      tensors.push_back(executorch::extension::from_blob(in.data, std::move(sizes),
                                                         static_cast<executorch::aten::ScalarType>(in.dtype)));
      values.emplace_back(*tensors.back());
    }
    Lease lease(*this);
    auto result = lease.module->execute(kMethod, values);
    if (!result.ok()) {
      throw EtError(Fault::Runtime, "ExecuTorch failed to run 'forward' (" + code(result.error()) + ")");
    }
    // Outputs live in the method's planned memory, reused by the next call: copied out.
    for (size_t i = 0; i < result->size(); ++i) {
      const rt::EValue& v = (*result)[i];
      if (!v.isTensor()) throw EtError(Fault::Runtime, "output " + std::to_string(i) + " of 'forward' is not a tensor");
      const auto& t = v.toTensor();
      TensorInfo info;
      for (auto s : t.sizes()) info.sizes.push_back(s);
      info.dtype = static_cast<int>(t.scalar_type());
      void* out = allocate(info, t.nbytes());
      if (t.nbytes() > 0) std::memcpy(out, t.const_data_ptr(), t.nbytes());
    }
  }

 private:
  // A method of the pool, held for one call.
  struct Lease {
    explicit Lease(const PooledProgram& p) : pool(p) {
      std::unique_lock<std::mutex> lock(pool.mutex_);
      pool.ready_.wait(lock, [&] { return !pool.free_.empty(); });
      module = pool.free_.back();
      pool.free_.pop_back();
    }
    ~Lease() {
      {
        std::lock_guard<std::mutex> lock(pool.mutex_);
        pool.free_.push_back(module);
      }
      pool.ready_.notify_one();
    }
    const PooledProgram& pool;
    Module* module = nullptr;
  };

  std::unique_ptr<BufferDataLoader> loader_;  // before program_: the program reads through it
  std::shared_ptr<rt::Program> program_;
  std::vector<std::unique_ptr<Module>> modules_;
  std::vector<TensorInfo> inputs_, outputs_;
  std::string where_;
  mutable std::mutex mutex_;
  mutable std::condition_variable ready_;
  mutable std::vector<Module*> free_;
};

}  // namespace

std::unique_ptr<Program> load_program(const void* data, size_t size, int concurrency, const std::string& where) {
  init_once();
  auto loader = std::make_unique<BufferDataLoader>(data, size);
  // InternalConsistency runs the flatbuffers verifier over the whole program:
  // offsets and lengths are checked before anything follows them.
  auto program = rt::Program::load(loader.get(), rt::Program::Verification::InternalConsistency);
  if (!program.ok()) {
    throw EtError(Fault::BadArtifact, where + " is not a loadable ExecuTorch program (" + code(program.error()) +
                                          ": truncated, corrupted, or written by an incompatible ExecuTorch)");
  }
  auto shared = std::make_shared<rt::Program>(std::move(program.get()));
  return std::make_unique<PooledProgram>(std::move(loader), std::move(shared), concurrency, where);
}

}  // namespace torchport::detail::et

// The plugin's entry points, found by the runtime with dlsym (executorch.cpp).
extern "C" __attribute__((visibility("default"))) int torchport_executorch_abi() {
  return torchport::detail::et::kPluginAbi;
}

extern "C" __attribute__((visibility("default"))) torchport::detail::et::Program* torchport_executorch_load_program(
    const void* data, size_t size, int concurrency, const std::string& where) {
  return torchport::detail::et::load_program(data, size, concurrency, where).release();
}
