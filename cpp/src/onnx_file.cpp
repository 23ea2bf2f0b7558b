// The protobuf walk of an ONNX ModelProto: its top level, just enough to find
// torchport's metadata without linking protobuf, and the graph's tensors, for
// data kept in another file; every length checked.

#include "onnx_file.h"

#include <cstdint>
#include <utility>

#include <torchport/tools.h>
#include <torchport/torchport.h>

namespace torchport::detail {
namespace {

// ModelProto and StringStringEntryProto field numbers (onnx/onnx.proto).
constexpr uint64_t kIrVersion = 1, kGraph = 7, kMetadataProps = 14;
constexpr uint64_t kEntryKey = 1, kEntryValue = 2;
enum Wire : uint64_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

struct Field {
  uint64_t number = 0;
  uint64_t wire = 0;
  uint64_t varint = 0;
  std::string_view bytes;  ///< kBytes only
};

class Walker {
 public:
  Walker(std::string_view data, const std::string& where, const char* what)
      : data_(data), where_(where), what_(what) {}

  bool done() const { return pos_ >= data_.size(); }

  Field next() {
    Field f;
    const size_t at = pos_;
    const uint64_t tag = varint("a field tag");
    f.number = tag >> 3;
    f.wire = tag & 7;
    if (f.number == 0) fail("field number 0 at byte " + std::to_string(at));
    switch (f.wire) {
      case kVarint: f.varint = varint("a varint"); break;
      case kFixed64: skip(8, "a 64-bit field"); break;
      case kFixed32: skip(4, "a 32-bit field"); break;
      case kBytes: {
        const uint64_t n = varint("a length");
        const size_t start = pos_;
        skip(n, "a length-delimited field of " + std::to_string(n) + " bytes");
        f.bytes = data_.substr(start, static_cast<size_t>(n));
        break;
      }
      default:
        fail("field " + std::to_string(f.number) + " has wire type " + std::to_string(f.wire) +
             " (expected 0, 1, 2 or 5) at byte " + std::to_string(at));
    }
    return f;
  }

  [[noreturn]] void fail(const std::string& why) const {
    throw Error(ErrorKind::BadArtifact, where_ + " is not an ONNX model: " + what_ + ": " + why);
  }

 private:
  uint64_t varint(const char* what) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) fail(std::string("truncated inside ") + what + " at byte " + std::to_string(pos_));
      const auto byte = static_cast<uint8_t>(data_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return value;
    }
    fail(std::string(what) + " longer than 10 bytes at byte " + std::to_string(pos_));
  }

  void skip(uint64_t n, const std::string& what) {
    if (n > data_.size() - pos_) {
      fail("truncated: " + what + " at byte " + std::to_string(pos_) + " needs " + std::to_string(n) +
           " bytes, " + std::to_string(data_.size() - pos_) + " are left");
    }
    pos_ += static_cast<size_t>(n);
  }

  std::string_view data_;
  size_t pos_ = 0;
  const std::string& where_;
  std::string what_;
};

int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::string decode_base64(std::string_view text, const std::string& where) {
  if (text.size() % 4 != 0) {
    throw Error(ErrorKind::BadArtifact, where + ": expected base64 (a multiple of 4 characters), got " +
                                            std::to_string(text.size()) + " characters");
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    for (int k = 0; k < 4; ++k) {
      const unsigned char c = static_cast<unsigned char>(text[i + k]);
      const bool padding_allowed = i + 4 == text.size() && k >= 2;
      v[k] = c == '=' && padding_allowed ? -2 : base64_value(c);
      if (v[k] == -1 || (k == 3 && v[2] == -2 && v[3] != -2)) {
        throw Error(ErrorKind::BadArtifact,
                    where + ": not base64: character " + std::to_string(i + k) + " is byte " + std::to_string(c));
      }
    }
    out.push_back(static_cast<char>((v[0] << 2) | (v[1] >> 4)));
    if (v[2] != -2) out.push_back(static_cast<char>(((v[1] & 15) << 4) | (v[2] >> 2)));
    if (v[3] != -2) out.push_back(static_cast<char>(((v[2] & 3) << 6) | v[3]));
  }
  return out;
}

// A StringStringEntryProto (metadata_props, external_data): its key and value.
std::pair<std::string_view, std::string_view> read_entry(std::string_view bytes, const std::string& where,
                                                         const char* what) {
  Walker entry(bytes, where, what);
  std::string_view key, value;
  while (!entry.done()) {
    const Field e = entry.next();
    if (e.wire != kBytes) continue;
    if (e.number == kEntryKey) key = e.bytes;
    if (e.number == kEntryValue) value = e.bytes;
  }
  return {key, value};
}

// GraphProto, NodeProto, AttributeProto, TensorProto and SparseTensorProto
// field numbers (onnx/onnx.proto): the places a tensor's data can live.
constexpr uint64_t kGraphNode = 1, kGraphInitializer = 5, kGraphSparseInitializer = 15;
constexpr uint64_t kNodeAttribute = 5;
constexpr uint64_t kAttrTensor = 5, kAttrGraph = 6, kAttrTensors = 10, kAttrGraphs = 11, kAttrSparseTensor = 22,
                   kAttrSparseTensors = 23;
constexpr uint64_t kTensorName = 8, kTensorExternalData = 13, kTensorDataLocation = 14;
constexpr uint64_t kSparseValues = 1, kSparseIndices = 2;
constexpr int kMaxGraphDepth = 64;

// A tensor whose data lives in another file: ONNX Runtime would read that path
// (relative to the process's working directory for a model loaded from bytes).
void check_tensor(std::string_view bytes, const std::string& where) {
  Walker t(bytes, where, "a TensorProto");
  std::string_view name, location;
  bool external = false;
  while (!t.done()) {
    const Field f = t.next();
    if (f.number == kTensorName && f.wire == kBytes) name = f.bytes;
    if (f.number == kTensorDataLocation && f.wire == kVarint && f.varint != 0) external = true;
    if (f.number == kTensorExternalData && f.wire == kBytes) {
      external = true;
      const auto [key, value] = read_entry(f.bytes, where, "an external_data entry");
      if (key == "location") location = value;
    }
  }
  if (external) {
    throw Error(ErrorKind::BadArtifact,
                where + ": tensor '" + std::string(name.substr(0, 200)) + "' keeps its data in another file ('" +
                    std::string(location.substr(0, 200)) +
                    "'); a torchport ONNX model carries every tensor inside it (export never writes external "
                    "data), and ONNX Runtime would read that path from the working directory");
  }
}

void check_sparse(std::string_view bytes, const std::string& where) {
  Walker s(bytes, where, "a SparseTensorProto");
  while (!s.done()) {
    const Field f = s.next();
    if ((f.number == kSparseValues || f.number == kSparseIndices) && f.wire == kBytes) check_tensor(f.bytes, where);
  }
}

void check_graph(std::string_view bytes, const std::string& where, int depth);

void check_node(std::string_view bytes, const std::string& where, int depth) {
  Walker node(bytes, where, "a NodeProto");
  while (!node.done()) {
    const Field f = node.next();
    if (f.number != kNodeAttribute || f.wire != kBytes) continue;
    Walker attr(f.bytes, where, "an AttributeProto");
    while (!attr.done()) {
      const Field a = attr.next();
      if (a.wire != kBytes) continue;
      if (a.number == kAttrTensor || a.number == kAttrTensors) check_tensor(a.bytes, where);
      if (a.number == kAttrSparseTensor || a.number == kAttrSparseTensors) check_sparse(a.bytes, where);
      if (a.number == kAttrGraph || a.number == kAttrGraphs) check_graph(a.bytes, where, depth + 1);
    }
  }
}

// Every tensor of the graph and of its subgraphs (If, Loop, Scan bodies).
void check_graph(std::string_view bytes, const std::string& where, int depth) {
  if (depth > kMaxGraphDepth) {
    throw Error(ErrorKind::BadArtifact, where + ": its graphs nest more than " + std::to_string(kMaxGraphDepth) +
                                            " levels deep (the limit)");
  }
  Walker graph(bytes, where, "a GraphProto");
  while (!graph.done()) {
    const Field f = graph.next();
    if (f.wire != kBytes) continue;
    if (f.number == kGraphInitializer) check_tensor(f.bytes, where);
    if (f.number == kGraphSparseInitializer) check_sparse(f.bytes, where);
    if (f.number == kGraphNode) check_node(f.bytes, where, depth);
  }
}

}  // namespace

bool looks_like_onnx(std::string_view bytes) {
  return !bytes.empty() && static_cast<uint8_t>(bytes[0]) == ((kIrVersion << 3) | kVarint);
}

OnnxRecords read_onnx_records(std::string_view bytes, const std::string& where) {
  OnnxRecords records;
  Walker top(bytes, where, "ModelProto");
  if (!looks_like_onnx(bytes)) top.fail("it does not start with field 1 (ir_version)");
  bool graph = false, has_manifest = false, has_golden = false;
  while (!top.done()) {
    const Field f = top.next();
    if (f.number == kGraph && f.wire == kBytes) {
      graph = true;
      check_graph(f.bytes, where, 0);
    }
    if (f.number != kMetadataProps) continue;
    if (f.wire != kBytes) top.fail("metadata_props is not length-delimited");
    const auto [key, value] = read_entry(f.bytes, where, "a metadata_props entry");
    if (key == kManifestFile) {
      if (has_manifest) top.fail(std::string("metadata_props holds '") + kManifestFile + "' twice");
      has_manifest = true;
      records.manifest_json = std::string(value);
    } else if (key == kGoldenFile) {
      if (has_golden) top.fail(std::string("metadata_props holds '") + kGoldenFile + "' twice");
      has_golden = true;
      records.golden_bytes = decode_base64(value, where + " metadata '" + kGoldenFile + "'");
    }
  }
  if (!graph) top.fail("it has no graph (field 7)");
  return records;
}

}  // namespace torchport::detail
