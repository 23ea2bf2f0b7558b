// ONNX models (.onnx) run by ONNX Runtime, which is loaded at run time: the
// runtime builds and runs without it, and uses the libonnxruntime.so that the
// `onnxruntime` wheel ships (capi/), one the user names, or the system's.
// The C API is reached through declarations written from its ABI
// (onnxruntime_api.h); every status it returns is checked and released.

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <sstream>

#include <ATen/ATen.h>
#include <c10/core/Allocator.h>

#include "backend.h"
#include "../detail.h"
#include "onnxruntime_api.h"

namespace torchport::detail {
namespace {

namespace fs = std::filesystem;
using namespace ort;

struct Runtime {
  const OrtApi* api = nullptr;
  OrtEnv* env = nullptr;
  OrtMemoryInfo* cpu = nullptr;
  OrtAllocator* allocator = nullptr;
  std::string library;  ///< the file it was loaded from
  std::string version;
};

// Where the `onnxruntime` wheel puts its library, relative to a library
// installed in the same site-packages (torch/lib/ or torchport/lib/):
// <site-packages>/onnxruntime/capi/libonnxruntime.so.<version>.
void add_wheel_candidates(const void* symbol, std::vector<std::string>& out) {
  Dl_info info{};
  if (!dladdr(symbol, &info) || !info.dli_fname) return;
  std::error_code ec;
  const fs::path capi = fs::path(info.dli_fname).parent_path().parent_path().parent_path() / "onnxruntime" / "capi";
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(capi, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("libonnxruntime.so", 0) == 0) found.push_back(entry.path().string());
  }
  std::sort(found.begin(), found.end());
  for (auto& f : found) {
    if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(std::move(f));
  }
}

std::string fix_hint() {
  return "install it with `pip install onnxruntime` (into the Python environment torchport is installed in), "
         "or name its libonnxruntime.so with Options::onnxruntime, torchport-run --onnxruntime, the binding's "
         "onnxruntime= or the TORCHPORT_ONNXRUNTIME environment variable";
}

// Loads ONNX Runtime once per process: the first library that loads serves
// every later model (two copies of its thread pools would compete).
const Runtime& runtime(const std::string& requested) {
  static std::mutex mutex;
  static Runtime loaded;
  std::lock_guard<std::mutex> lock(mutex);
  std::vector<std::string> candidates;
  std::string source;
  const char* env = std::getenv("TORCHPORT_ONNXRUNTIME");
  if (!requested.empty()) {
    candidates = {requested};
    source = "onnxruntime: ";
  } else if (env && *env) {
    candidates = {env};
    source = "TORCHPORT_ONNXRUNTIME: ";
  }
  if (loaded.api) {
    if (!candidates.empty() && fs::weakly_canonical(candidates[0]) != fs::weakly_canonical(loaded.library)) {
      throw Error(ErrorKind::BadOption, source + "ONNX Runtime is already loaded in this process from '" +
                                            loaded.library + "'; expected that library or none, got '" +
                                            candidates[0] + "'");
    }
    return loaded;
  }
  if (candidates.empty()) {
    add_wheel_candidates(reinterpret_cast<const void*>(&runtime), candidates);           // torchport/lib/
    add_wheel_candidates(reinterpret_cast<const void*>(&c10::GetAllocator), candidates);  // torch/lib/
    candidates.push_back("libonnxruntime.so");  // the dynamic loader's search path
  }
  std::string tried;
  for (const auto& candidate : candidates) {
    void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* why = dlerror();
      tried += "\n  " + candidate + ": " + (why ? why : "cannot be loaded");
      continue;
    }
    using GetApiBase = const OrtApiBase* (*)();
    auto get_base = reinterpret_cast<GetApiBase>(dlsym(handle, "OrtGetApiBase"));
    const OrtApiBase* base = get_base ? get_base() : nullptr;
    if (!base) {
      tried += "\n  " + candidate + ": does not export OrtGetApiBase (not ONNX Runtime)";
      dlclose(handle);
      continue;
    }
    const char* version = base->GetVersionString ? base->GetVersionString() : "?";
    const OrtApi* api = base->GetApi(kOrtApiVersion);
    if (!api) {
      tried += "\n  " + candidate + ": ONNX Runtime " + version + " does not serve C API version " +
               std::to_string(kOrtApiVersion) + " (1.13 or newer needed)";
      dlclose(handle);
      continue;
    }
    // Kept loaded for the life of the process: sessions and the env live there.
    Runtime rt;
    rt.api = api;
    rt.library = candidate;
    rt.version = version;
    auto check = [&](OrtStatus* status, const char* what) {
      if (!status) return;
      const std::string msg = api->GetErrorMessage(status);
      api->ReleaseStatus(status);
      throw Error(ErrorKind::Unavailable, "ONNX Runtime " + rt.version + " ('" + candidate + "'): " + what + ": " + msg);
    };
    check(api->CreateEnv(ORT_LOGGING_LEVEL_FATAL, "torchport", &rt.env), "CreateEnv");
    check(api->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &rt.cpu), "CreateCpuMemoryInfo");
    check(api->GetAllocatorWithDefaultOptions(&rt.allocator), "GetAllocatorWithDefaultOptions");
    loaded = rt;
    return loaded;
  }
  throw Error(ErrorKind::Unavailable, source + "ONNX models need ONNX Runtime, which could not be loaded; " +
                                          fix_hint() + ". Tried:" + tried);
}

std::optional<ONNXTensorElementDataType> onnx_type(c10::ScalarType t) {
  switch (t) {
    case at::kFloat: return ONNX_FLOAT;
    case at::kDouble: return ONNX_DOUBLE;
    case at::kHalf: return ONNX_FLOAT16;
    case at::kBFloat16: return ONNX_BFLOAT16;
    case at::kLong: return ONNX_INT64;
    case at::kInt: return ONNX_INT32;
    case at::kShort: return ONNX_INT16;
    case at::kChar: return ONNX_INT8;
    case at::kByte: return ONNX_UINT8;
    case at::kBool: return ONNX_BOOL;
    default: return std::nullopt;
  }
}

std::optional<c10::ScalarType> torch_type(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_FLOAT: return at::kFloat;
    case ONNX_DOUBLE: return at::kDouble;
    case ONNX_FLOAT16: return at::kHalf;
    case ONNX_BFLOAT16: return at::kBFloat16;
    case ONNX_INT64: return at::kLong;
    case ONNX_INT32: return at::kInt;
    case ONNX_INT16: return at::kShort;
    case ONNX_INT8: return at::kChar;
    case ONNX_UINT8: return at::kByte;
    case ONNX_BOOL: return at::kBool;
    default: return std::nullopt;
  }
}

// The manifest's name of a dtype ("float32"), for messages.
std::string dtype_name(c10::ScalarType t) {
  for (const auto& name : supported_dtypes()) {
    if (parse_dtype(name) == t) return name;
  }
  return c10::toString(t);
}

const char* onnx_type_name(ONNXTensorElementDataType t) {
  static const char* names[] = {"undefined", "float",  "uint8",  "int8",      "uint16",     "int16",
                                "int32",     "int64",  "string", "bool",      "float16",    "double",
                                "uint32",    "uint64", "complex64", "complex128", "bfloat16"};
  return t >= 0 && t <= ONNX_BFLOAT16 ? names[t] : "unknown";
}

GraphOptimizationLevel optimization_level(const std::string& level) {
  if (level.empty() || level == "all") return ORT_ENABLE_ALL;
  if (level == "extended") return ORT_ENABLE_EXTENDED;
  if (level == "basic") return ORT_ENABLE_BASIC;
  return ORT_DISABLE_ALL;  // "none"; check_options refused anything else
}

class OnnxRuntimeBackend final : public Backend {
 public:
  OnnxRuntimeBackend(const std::string& path, const std::string& bytes, const Options& options,
                     const Manifest* manifest)
      : rt_(runtime(options.onnxruntime)), path_(path), session_(nullptr, rt_.api->ReleaseSession) {
    const OrtApi* api = rt_.api;
    OrtSessionOptions* so = nullptr;
    check(api->CreateSessionOptions(&so), ErrorKind::Unavailable, "CreateSessionOptions");
    std::unique_ptr<OrtSessionOptions, void (*)(OrtSessionOptions*)> session_options(so, api->ReleaseSessionOptions);
    check(api->SetSessionGraphOptimizationLevel(so, optimization_level(options.onnx_optimization)),
          ErrorKind::BadOption, "onnx_optimization");
    // Options::threads sizes this session's own pool (0: ONNX Runtime's
    // default); nodes run one after another, so no inter-op pool.
    check(api->SetIntraOpNumThreads(so, options.threads), ErrorKind::BadOption, "threads");
    check(api->SetInterOpNumThreads(so, 1), ErrorKind::BadOption, "inter-op threads");
    check(api->SetSessionExecutionMode(so, ORT_SEQUENTIAL), ErrorKind::BadOption, "execution mode");
    check(api->SetSessionLogSeverityLevel(so, ORT_LOGGING_LEVEL_FATAL), ErrorKind::BadOption, "log level");
    // ONNX Runtime parses the graph: a truncated or foreign protobuf, an
    // unknown operator or a type error is refused here, as BadArtifact.
    OrtSession* session = nullptr;
    if (OrtStatus* status = api->CreateSessionFromArray(rt_.env, bytes.data(), bytes.size(), so, &session)) {
      fail(status, ErrorKind::BadArtifact, "ONNX Runtime " + rt_.version + " cannot load the model");
    }
    session_.reset(session);
    read_signature();
    if (manifest) check_manifest(*manifest);
  }

  std::string format() const override { return "onnx"; }

  Manifest signature() const override { return signature_; }

  std::vector<at::Tensor> forward(std::vector<at::Tensor> inputs) const override {
    const OrtApi* api = rt_.api;
    if (inputs.size() != input_names_.size()) {
      throw Error(ErrorKind::BadInput, "'" + path_ + "': the ONNX graph takes " + std::to_string(input_names_.size()) +
                                           " inputs, got " + std::to_string(inputs.size()));
    }
    std::vector<OrtValue*> in(inputs.size(), nullptr);
    std::vector<OrtValue*> out(output_names_.size(), nullptr);
    struct Release {
      const OrtApi* api;
      std::vector<OrtValue*>* values;
      ~Release() {
        for (OrtValue* v : *values) if (v) api->ReleaseValue(v);
      }
    } release_in{api, &in}, release_out{api, &out};
    static char empty_buffer[16];
    for (size_t i = 0; i < inputs.size(); ++i) {
      const at::Tensor& t = inputs[i];
      const std::string& name = signature_.inputs[i].name;
      if (!t.defined()) {
        throw Error(ErrorKind::BadInput, "input '" + name + "': an ONNX graph cannot leave out an input");
      }
      const auto type = onnx_type(t.scalar_type());
      if (!type) {
        throw Error(ErrorKind::BadInput, "input '" + name + "': dtype " + std::string(c10::toString(t.scalar_type())) +
                                             " is not one ONNX Runtime takes here (float32, float64, float16, "
                                             "bfloat16, int64, int32, int16, int8, uint8, bool)");
      }
      // The input's own memory (validated contiguous CPU): ONNX Runtime reads it, no copy.
      void* data = t.numel() == 0 ? static_cast<void*>(empty_buffer) : const_cast<void*>(t.const_data_ptr());
      check(api->CreateTensorWithDataAsOrtValue(rt_.cpu, data, t.nbytes(), t.sizes().data(), t.sizes().size(), *type,
                                                &in[i]),
            ErrorKind::BadInput, "input", name);
    }
    check(api->Run(session_.get(), nullptr, input_ptrs_.data(), in.data(), in.size(), output_ptrs_.data(), out.size(),
                   out.data()),
          ErrorKind::Runtime, "ONNX Runtime failed to run the model");
    std::vector<at::Tensor> outputs;
    outputs.reserve(out.size());
    for (size_t i = 0; i < out.size(); ++i) outputs.push_back(take_output(out[i], output_names_[i]));
    return outputs;
  }

 private:
  // Wraps ONNX Runtime's output buffer without a copy; the tensor's deleter
  // releases the OrtValue. `value` is null on return when ownership moved.
  at::Tensor take_output(OrtValue*& value, const std::string& name) const {
    const OrtApi* api = rt_.api;
    ONNXType kind = ONNX_TYPE_UNKNOWN;
    check(api->GetValueType(value, &kind), ErrorKind::Runtime, "output", name);
    if (kind != ONNX_TYPE_TENSOR) {
      throw Error(ErrorKind::Runtime, "'" + path_ + "' output '" + name + "': expected a tensor, got ONNX value type " +
                                          std::to_string(kind) + " (sequences and maps are not supported)");
    }
    OrtTensorTypeAndShapeInfo* info = nullptr;
    check(api->GetTensorTypeAndShape(value, &info), ErrorKind::Runtime, "output", name);
    std::unique_ptr<OrtTensorTypeAndShapeInfo, void (*)(OrtTensorTypeAndShapeInfo*)> info_guard(
        info, api->ReleaseTensorTypeAndShapeInfo);
    ONNXTensorElementDataType elem = ONNX_UNDEFINED;
    size_t rank = 0;
    check(api->GetTensorElementType(info, &elem), ErrorKind::Runtime, "output", name);
    check(api->GetDimensionsCount(info, &rank), ErrorKind::Runtime, "output", name);
    c10::SmallVector<int64_t, 8> dims(rank);
    check(api->GetDimensions(info, dims.data(), rank), ErrorKind::Runtime, "output", name);
    const auto dtype = torch_type(elem);
    if (!dtype) {
      throw Error(ErrorKind::Runtime, "'" + path_ + "' output '" + name + "': ONNX type " + onnx_type_name(elem) +
                                          " has no torch dtype here");
    }
    const auto options = at::TensorOptions().dtype(*dtype).device(at::kCPU);
    int64_t numel = 1;
    for (const int64_t d : dims) numel *= d;
    if (numel == 0) return at::empty(dims, options);
    void* data = nullptr;
    check(api->GetTensorMutableData(value, &data), ErrorKind::Runtime, "output", name);
    OrtValue* owned = value;
    value = nullptr;
    return at::from_blob(data, dims, [api, owned](void*) { api->ReleaseValue(owned); }, options);
  }

  void read_signature() {
    const OrtApi* api = rt_.api;
    size_t n_in = 0, n_out = 0;
    check(api->SessionGetInputCount(session_.get(), &n_in), ErrorKind::BadArtifact, "input count");
    check(api->SessionGetOutputCount(session_.get(), &n_out), ErrorKind::BadArtifact, "output count");
    signature_.name = "model";
    signature_.format = "onnx";
    for (size_t i = 0; i < n_in; ++i) signature_.inputs.push_back(spec(i, /*input=*/true));
    for (size_t i = 0; i < n_out; ++i) signature_.outputs.push_back(spec(i, /*input=*/false));
    for (const auto& s : signature_.inputs) input_names_.push_back(s.name);
    for (const auto& s : signature_.outputs) output_names_.push_back(s.name);
    for (const auto& n : input_names_) input_ptrs_.push_back(n.c_str());
    for (const auto& n : output_names_) output_ptrs_.push_back(n.c_str());
  }

  TensorSpec spec(size_t index, bool input) {
    const OrtApi* api = rt_.api;
    const std::string what = std::string(input ? "input " : "output ") + std::to_string(index);
    const char* kind_name = input ? "input" : "output";
    char* raw = nullptr;
    check(input ? api->SessionGetInputName(session_.get(), index, rt_.allocator, &raw)
                : api->SessionGetOutputName(session_.get(), index, rt_.allocator, &raw),
          ErrorKind::BadArtifact, kind_name, std::to_string(index));
    TensorSpec s;
    s.name = raw ? raw : "";
    if (raw) static_cast<void>(api->AllocatorFree(rt_.allocator, raw));  // its status carries nothing to act on
    OrtTypeInfo* type_info = nullptr;
    check(input ? api->SessionGetInputTypeInfo(session_.get(), index, &type_info)
                : api->SessionGetOutputTypeInfo(session_.get(), index, &type_info),
          ErrorKind::BadArtifact, kind_name, std::to_string(index));
    std::unique_ptr<OrtTypeInfo, void (*)(OrtTypeInfo*)> guard(type_info, api->ReleaseTypeInfo);
    ONNXType kind = ONNX_TYPE_UNKNOWN;
    check(api->GetOnnxTypeFromTypeInfo(type_info, &kind), ErrorKind::BadArtifact, kind_name, std::to_string(index));
    if (kind != ONNX_TYPE_TENSOR) {
      throw Error(ErrorKind::BadArtifact, "'" + path_ + "' " + what + " ('" + s.name +
                                              "'): expected a tensor, got ONNX value type " + std::to_string(kind));
    }
    const OrtTensorTypeAndShapeInfo* info = nullptr;
    check(api->CastTypeInfoToTensorInfo(type_info, &info), ErrorKind::BadArtifact, kind_name, std::to_string(index));
    ONNXTensorElementDataType elem = ONNX_UNDEFINED;
    size_t rank = 0;
    check(api->GetTensorElementType(info, &elem), ErrorKind::BadArtifact, kind_name, std::to_string(index));
    check(api->GetDimensionsCount(info, &rank), ErrorKind::BadArtifact, kind_name, std::to_string(index));
    std::vector<int64_t> dims(rank);
    check(api->GetDimensions(info, dims.data(), rank), ErrorKind::BadArtifact, kind_name, std::to_string(index));
    s.dtype = torch_type(elem);
    if (!s.dtype) {
      throw Error(ErrorKind::BadArtifact, "'" + path_ + "' " + what + " ('" + s.name + "') is ONNX type " +
                                              onnx_type_name(elem) +
                                              ", which the runtime does not support (float32, float64, float16, "
                                              "bfloat16, int64, int32, int16, int8, uint8, bool)");
    }
    for (auto& d : dims) d = d < 0 ? -1 : d;  // symbolic dims are reported as -1
    s.shape = dims;
    return s;
  }

  // A manifest that disagrees with the graph it describes would pass inputs
  // the graph refuses (or mislabel outputs): refused at load.
  void check_manifest(const Manifest& m) const {
    const std::string where = "'" + path_ + "' torchport/manifest.json";
    auto compare = [&](const TensorSpec& declared, const TensorSpec& graph, const std::string& what) {
      if (declared.dtype && *declared.dtype != *graph.dtype) {
        throw Error(ErrorKind::BadArtifact, where + ": " + what + " '" + declared.name + "' is " +
                                                dtype_name(*declared.dtype) + ", but the ONNX graph's '" +
                                                graph.name + "' is " + dtype_name(*graph.dtype));
      }
      if (!declared.shape) return;
      const auto& a = *declared.shape;
      const auto& b = *graph.shape;
      bool same = a.size() == b.size();
      for (size_t d = 0; same && d < a.size(); ++d) same = a[d] < 0 || b[d] < 0 || a[d] == b[d];
      if (!same) {
        std::ostringstream msg;
        msg << where << ": " << what << " '" << declared.name << "' has shape " << c10::IntArrayRef(a)
            << ", but the ONNX graph's '" << graph.name << "' has " << c10::IntArrayRef(b) << " (-1: dynamic)";
        throw Error(ErrorKind::BadArtifact, msg.str());
      }
    };
    for (size_t i = 0; i < m.inputs.size() && i < signature_.inputs.size(); ++i) {
      compare(m.inputs[i], signature_.inputs[i], "input");
    }
    if (m.structure_json.empty()) {
      if (m.outputs.size() != signature_.outputs.size()) {
        throw Error(ErrorKind::BadArtifact, where + ": lists " + std::to_string(m.outputs.size()) +
                                                " outputs, but the ONNX graph has " +
                                                std::to_string(signature_.outputs.size()));
      }
      for (size_t i = 0; i < m.outputs.size(); ++i) compare(m.outputs[i], signature_.outputs[i], "output");
    }
  }

  // `what` and `name` are joined only on failure: the success path of a call
  // allocates nothing here.
  void check(OrtStatus* status, ErrorKind kind, const char* what, const std::string& name = {}) const {
    if (!status) return;
    fail(status, kind, name.empty() ? std::string(what) : std::string(what) + " '" + name + "'");
  }

  [[noreturn]] void fail(OrtStatus* status, ErrorKind kind, const std::string& what) const {
    const OrtApi* api = rt_.api;
    const int code = api->GetErrorCode(status);
    const std::string msg = api->GetErrorMessage(status);
    api->ReleaseStatus(status);
    // ORT_INVALID_ARGUMENT (2) from Run is an input the graph refuses.
    if (kind == ErrorKind::Runtime && code == 2) kind = ErrorKind::BadInput;
    throw Error(kind, "'" + path_ + "': " + what + ": " + msg);
  }

  const Runtime& rt_;
  std::string path_;
  std::unique_ptr<OrtSession, void (*)(OrtSession*)> session_;
  Manifest signature_;
  std::vector<std::string> input_names_, output_names_;
  std::vector<const char*> input_ptrs_, output_ptrs_;
};

}  // namespace

std::unique_ptr<Backend> open_onnxruntime(const OpenRequest& request) {
  if (!request.device.is_cpu()) {
    throw Error(ErrorKind::BadOption, "device: ONNX models run on the CPU here, got \"" + request.options.device +
                                          "\" for '" + request.path + "'");
  }
  return std::make_unique<OnnxRuntimeBackend>(request.path, *request.bytes, request.options, request.manifest);
}

std::string onnxruntime_library(const std::string& requested) {
  const Runtime& rt = runtime(requested);
  return rt.library + " (ONNX Runtime " + rt.version + ")";
}

}  // namespace torchport::detail
