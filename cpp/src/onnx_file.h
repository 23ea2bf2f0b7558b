#pragma once
// An ONNX model as torchport exports it: a protobuf ModelProto whose
// metadata_props hold torchport/manifest.json (text) and torchport/golden.pt
// (base64). Only the top level and the metadata entries are walked here,
// with every length checked against the bytes, and the graph's tensors for
// external data; the graph itself is left to ONNX Runtime (backends/onnxruntime.cpp).

#include <string>
#include <string_view>

namespace torchport::detail {

/// True when `bytes` starts as a ModelProto does (field 1, ir_version, a varint).
bool looks_like_onnx(std::string_view bytes);

/// torchport's records in an ONNX model's metadata_props; empty when absent.
struct OnnxRecords {
  std::string manifest_json;
  std::string golden_bytes;  ///< decoded from base64
};

/// Walks the ModelProto's top level (wire types, lengths, a graph present) and
/// reads torchport's records; refuses a tensor anywhere in the graph (its
/// initializers, node attributes, subgraphs) whose data lives in another file.
/// Throws BadArtifact naming `where` and what is wrong.
OnnxRecords read_onnx_records(std::string_view bytes, const std::string& where);

}  // namespace torchport::detail
