#pragma once
// Artifacts built in C++ for the C++ tests: a TorchScript module defined from
// source, saved with (or without) torchport's manifest and golden files.

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>
#include <torchport/torchport.h>

#include <torch/script.h>
#include <torch/serialize.h>

namespace torchport::testing {

// Runs `fn`, expects a torchport::Error of `kind` whose message contains every
// string of `parts`.
template <typename Fn>
void expect_error(Fn&& fn, torchport::ErrorKind kind, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "expected torchport::Error(" << torchport::to_string(kind) << ")";
  } catch (const torchport::Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& part : parts) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message lacks '" << part << "': " << e.what();
    }
  }
}

inline std::filesystem::path temp_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() /
             ("torchport-cpp-tests-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

/// y = x @ W + b with W = arange(8).reshape(4, 2) / 8, b = [0.5, -0.5].
inline torch::jit::Module linear_module() {
  torch::jit::Module m("Linear");
  m.register_parameter("weight", torch::arange(8, torch::kFloat32).reshape({4, 2}) / 8, false);
  m.register_parameter("bias", torch::tensor({0.5f, -0.5f}), false);
  m.define(R"(
    def forward(self, x):
        return torch.matmul(x, self.weight) + self.bias
  )");
  return m;
}

/// Two inputs, a tuple of two outputs.
inline torch::jit::Module two_io_module() {
  torch::jit::Module m("TwoIO");
  m.define(R"(
    def forward(self, a, b):
        return (a + b, a * b.sum(dim=1, keepdim=True))
  )");
  return m;
}

/// No manifest, so nothing stops a wrong shape before the model: matmul with a
/// [3, 3] matrix fails inside LibTorch unless x has 3 columns.
inline torch::jit::Module failing_module() {
  torch::jit::Module m("Failing");
  m.define(R"(
    def forward(self, x):
        return torch.matmul(x, torch.ones(3, 3))
  )");
  return m;
}

inline std::string linear_manifest(int schema = 1) {
  return R"({"schema": )" + std::to_string(schema) + R"(, "name": "linear", "torchport_version": "0.1.0",
    "torch_version": "2.13.0", "export_method": "script", "created": "2026-01-01T00:00:00Z",
    "inputs": [{"name": "x", "dtype": "float32", "shape": [null, 4]}],
    "outputs": [{"name": "y", "dtype": "float32", "shape": [null, 2]}],
    "metadata": {"labels": ["a", "b"]}, "golden": true})";
}

inline std::string golden_bytes(const std::vector<at::Tensor>& inputs,
                                const std::vector<at::Tensor>& outputs) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("inputs", c10::List<at::Tensor>(c10::ArrayRef<at::Tensor>(inputs)));
  dict.insert("outputs", c10::List<at::Tensor>(c10::ArrayRef<at::Tensor>(outputs)));
  const auto bytes = torch::pickle_save(dict);
  return std::string(bytes.begin(), bytes.end());
}

/// Saves `module` at `name` in the temp folder with the given extra files.
inline std::string save(torch::jit::Module module, const std::string& name,
                        const torch::jit::ExtraFilesMap& extra = {}) {
  const auto path = (temp_dir() / name).string();
  module.save(path, extra);
  return path;
}

/// The linear model with a manifest and golden examples.
inline std::string linear_artifact(const std::string& name = "linear.pt") {
  auto m = linear_module();
  const auto x = torch::tensor({{1.f, 2.f, 3.f, 4.f}, {0.f, -1.f, 0.5f, 2.f}});
  const auto y = m.forward({x}).toTensor();
  return save(m, name,
              {{"torchport/manifest.json", linear_manifest()},
               {"torchport/golden.pt", golden_bytes({x}, {y})}});
}

inline std::string write_file(const std::string& name, const std::string& bytes) {
  const auto path = (temp_dir() / name).string();
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace torchport::testing
