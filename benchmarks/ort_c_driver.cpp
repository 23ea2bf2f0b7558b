// ONNX Runtime through its C API alone, for benchmarks/ort_backend.py: the
// floor torchport's ONNX backend is measured against. Each call does what a
// C application would: wrap the input buffer (CreateTensorWithDataAsOrtValue),
// Run with ORT-allocated outputs, release them. Built by the benchmark with
//   g++ -O2 -std=c++17 -I cpp/src/backends benchmarks/ort_c_driver.cpp -ldl
// and run as: driver LIBONNXRUNTIME MODEL.onnx ITERS WARMUP DIM...  -> p50 ms on stdout.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "onnxruntime_api.h"

using namespace torchport::detail::ort;

static const OrtApi* api;

static void check(OrtStatus* s, const char* what) {
  if (!s) return;
  std::fprintf(stderr, "%s: %s\n", what, api->GetErrorMessage(s));
  std::exit(1);
}

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s LIB MODEL ITERS WARMUP DIM...\n", argv[0]);
    return 2;
  }
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) return std::fprintf(stderr, "%s\n", dlerror()), 1;
  auto base = reinterpret_cast<const OrtApiBase* (*)()>(dlsym(lib, "OrtGetApiBase"))();
  api = base->GetApi(kOrtApiVersion);
  std::ifstream file(argv[2], std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const int iters = std::atoi(argv[3]), warmup = std::atoi(argv[4]);
  std::vector<int64_t> shape;
  for (int i = 5; i < argc; ++i) shape.push_back(std::atoll(argv[i]));

  OrtEnv* env;
  check(api->CreateEnv(ORT_LOGGING_LEVEL_FATAL, "driver", &env), "CreateEnv");
  OrtSessionOptions* so;
  check(api->CreateSessionOptions(&so), "CreateSessionOptions");
  check(api->SetIntraOpNumThreads(so, 1), "threads");
  check(api->SetInterOpNumThreads(so, 1), "inter-op");
  check(api->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL), "level");
  OrtSession* session;
  check(api->CreateSessionFromArray(env, bytes.data(), bytes.size(), so, &session), "CreateSession");
  OrtAllocator* alloc;
  check(api->GetAllocatorWithDefaultOptions(&alloc), "allocator");
  char *in_name, *out_name;
  check(api->SessionGetInputName(session, 0, alloc, &in_name), "input name");
  check(api->SessionGetOutputName(session, 0, alloc, &out_name), "output name");
  OrtMemoryInfo* cpu;
  check(api->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &cpu), "memory info");
  size_t n = 1;
  for (auto d : shape) n *= static_cast<size_t>(d);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 7919) % 1000) / 500.0f - 1.0f;

  std::vector<double> times;
  for (int i = 0; i < warmup + iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    OrtValue* in = nullptr;
    check(api->CreateTensorWithDataAsOrtValue(cpu, x.data(), n * sizeof(float), shape.data(), shape.size(),
                                              ONNX_FLOAT, &in), "input");
    OrtValue* out = nullptr;
    check(api->Run(session, nullptr, &in_name, &in, 1, &out_name, 1, &out), "Run");
    api->ReleaseValue(out);
    api->ReleaseValue(in);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (i >= warmup) times.push_back(ms);
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  std::printf("%.6f\n", times[times.size() / 2]);
  return 0;
}
