// edge_app: runs a torchport ExecuTorch artifact (.pte) with ExecuTorch's
// runtime only, keeping torchport's input contract: the manifest after the
// program says each input's name, dtype and shape, and an input that breaks it
// is refused before the program sees it.
//
//   edge_app MODEL.pte BATCH [INPUTS.bin OUTPUTS.bin]
//
// Dims the manifest names "batch" take BATCH; INPUTS.bin holds every input's
// raw bytes (little-endian, contiguous) in manifest order, OUTPUTS.bin gets the
// outputs' the same way. Without them the inputs are filled with 0.5.
// The file layout (program, manifest, golden examples, 40-byte footer) is
// described in torchport's docs/artifact.md.

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <executorch/extension/data_loader/buffer_data_loader.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr_maker.h>
#include <nlohmann/json.hpp>

using executorch::aten::ScalarType;
using executorch::extension::Module;

namespace {

uint64_t le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

struct Input {
  std::string name;
  ScalarType dtype;
  size_t element_size;
  std::vector<int64_t> shape;  // -1: dynamic, not "batch"
};

// The manifest's dtype names this example handles.
void dtype_of(const std::string& name, ScalarType& type, size_t& size) {
  if (name == "float32") { type = ScalarType::Float; size = 4; return; }
  if (name == "int64") { type = ScalarType::Long; size = 8; return; }
  if (name == "int32") { type = ScalarType::Int; size = 4; return; }
  if (name == "uint8") { type = ScalarType::Byte; size = 1; return; }
  throw std::runtime_error("dtype '" + name + "' is not handled by this example");
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// torchport's input contract: rank and fixed dims as the manifest says.
void check_input(const Input& in, const std::vector<int64_t>& got) {
  if (got.size() != in.shape.size()) {
    throw std::invalid_argument("input '" + in.name + "': expected " + std::to_string(in.shape.size()) +
                                " dimensions, got " + std::to_string(got.size()) + " (shape " + shape_string(got) + ")");
  }
  for (size_t d = 0; d < got.size(); ++d) {
    if (in.shape[d] >= 0 && got[d] != in.shape[d]) {
      throw std::invalid_argument("input '" + in.name + "': dim " + std::to_string(d) + " expected " +
                                  std::to_string(in.shape[d]) + ", got " + std::to_string(got[d]));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 5) {
    std::cerr << "usage: edge_app MODEL.pte BATCH [INPUTS.bin OUTPUTS.bin]\n";
    return 2;
  }
  try {
    std::ifstream file(argv[1], std::ios::binary);
    if (!file) throw std::runtime_error(std::string("cannot open ") + argv[1]);
    const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    const int64_t batch = std::stoll(argv[2]);

    // The footer: "TPORTPTE", version, 0, then the program, manifest and golden sizes.
    const size_t kFooter = 40;
    if (bytes.size() < kFooter || bytes.compare(bytes.size() - kFooter, 8, "TPORTPTE") != 0) {
      throw std::runtime_error(std::string(argv[1]) + " has no torchport manifest (not exported by torchport)");
    }
    const char* footer = bytes.data() + bytes.size() - kFooter;
    const uint64_t program = le64(footer + 16), manifest = le64(footer + 24), golden = le64(footer + 32);
    if (program > bytes.size() || manifest > bytes.size() || golden > bytes.size() ||
        program + manifest + golden + kFooter != bytes.size()) {
      throw std::runtime_error(std::string(argv[1]) + ": torchport footer sizes do not match the file");
    }
    const auto doc = nlohmann::json::parse(bytes.substr(program, manifest));

    std::vector<Input> inputs;
    for (const auto& spec : doc.at("inputs")) {
      Input in;
      in.name = spec.at("name").get<std::string>();
      dtype_of(spec.at("dtype").get<std::string>(), in.dtype, in.element_size);
      for (const auto& d : spec.at("shape")) {
        in.shape.push_back(d.is_number() ? d.get<int64_t>() : (d.is_string() && d.get<std::string>() == "batch" ? batch : -1));
      }
      inputs.push_back(in);
    }
    std::cout << "model " << doc.at("name").get<std::string>() << " (" << doc.value("format", "?") << ")\n";

    // The program itself, read by ExecuTorch from the same bytes.
    Module module(std::make_unique<executorch::extension::BufferDataLoader>(bytes.data(), program));
    if (module.load_method("forward") != executorch::runtime::Error::Ok) {
      throw std::runtime_error(std::string(argv[1]) + ": ExecuTorch cannot load its method 'forward'");
    }

    std::string raw;
    if (argc == 5) {
      std::ifstream in(argv[3], std::ios::binary);
      raw.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }
    std::vector<std::vector<char>> buffers;
    std::vector<executorch::extension::TensorPtr> tensors;
    std::vector<executorch::runtime::EValue> values;
    size_t offset = 0;
    for (const auto& in : inputs) {
      std::vector<int64_t> shape = in.shape;
      size_t count = 1;
      for (auto& d : shape) {
        if (d < 0) throw std::runtime_error("input '" + in.name + "' has a dynamic dim other than batch");
        count *= static_cast<size_t>(d);
      }
      check_input(in, shape);
      buffers.emplace_back(count * in.element_size);
      auto& buffer = buffers.back();
      if (argc == 5) {
        if (offset + buffer.size() > raw.size()) throw std::runtime_error(std::string(argv[3]) + " is too short");
        std::memcpy(buffer.data(), raw.data() + offset, buffer.size());
        offset += buffer.size();
      } else if (in.dtype == ScalarType::Float) {
        for (size_t i = 0; i < count; ++i) reinterpret_cast<float*>(buffer.data())[i] = 0.5f;
      }
      std::vector<executorch::aten::SizesType> sizes(shape.begin(), shape.end());
      tensors.push_back(executorch::extension::from_blob(buffer.data(), sizes, in.dtype));
      values.emplace_back(*tensors.back());
    }

    auto result = module.execute("forward", values);
    if (!result.ok()) throw std::runtime_error("forward failed: ExecuTorch error " + std::to_string(static_cast<int>(result.error())));
    std::ofstream out;
    if (argc == 5) out.open(argv[4], std::ios::binary);
    const auto& names = doc.at("outputs");
    for (size_t i = 0; i < result->size(); ++i) {
      const auto& t = (*result)[i].toTensor();
      std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
      std::cout << "output " << names.at(i).at("name").get<std::string>() << ": " << shape_string(shape) << "\n";
      if (out) out.write(static_cast<const char*>(t.const_data_ptr()), static_cast<std::streamsize>(t.nbytes()));
    }

    // The contract refuses a wrong input before the program runs.
    try {
      check_input(inputs.at(0), {1, 2, 3, 4, 5});
    } catch (const std::invalid_argument& e) {
      std::cout << "rejected bad input: " << e.what() << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "edge_app: " << e.what() << "\n";
    return 1;
  }
}
