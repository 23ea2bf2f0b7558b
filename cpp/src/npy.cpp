#include "npy.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <torchport/torchport.h>

namespace torchport::detail {
namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;  // numpy itself writes a few hundred bytes
constexpr size_t kMaxDims = 64;
constexpr uint64_t kMaxDim = uint64_t{1} << 48;

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw Error(ErrorKind::BadInput, where + " is not a readable .npy array: " + what);
}

// The value after 'key': in the header's Python dict literal, with leading spaces skipped.
size_t value_at(const std::string& header, const std::string& key, const std::string& where) {
  const auto at = header.find("'" + key + "'");
  if (at == std::string::npos) bad(where, "its header has no '" + key + "'");
  // NumPy's literal_eval keeps the last of repeated keys, this parser would read
  // the first: a header that repeats one (in either quoting) is refused.
  if (header.find("'" + key + "'", at + 1) != std::string::npos || header.find("\"" + key + "\"") != std::string::npos) {
    bad(where, "its header repeats the key '" + key + "'");
  }
  auto colon = header.find(':', at + key.size() + 2);
  if (colon == std::string::npos) bad(where, "its header's '" + key + "' has no value");
  ++colon;
  while (colon < header.size() && header[colon] == ' ') ++colon;
  return colon;
}

std::pair<c10::ScalarType, size_t> dtype_of(const std::string& descr, const std::string& where) {
  static const std::vector<std::tuple<std::string, c10::ScalarType, size_t>> kTypes = {
      {"<f4", at::kFloat, 4}, {"<f8", at::kDouble, 8}, {"<f2", at::kHalf, 2},  {"<i8", at::kLong, 8},
      {"<i4", at::kInt, 4},   {"<i2", at::kShort, 2},  {"|i1", at::kChar, 1},  {"|u1", at::kByte, 1},
      {"|b1", at::kBool, 1},
  };
  for (const auto& [name, type, size] : kTypes) {
    if (descr == name) return {type, size};
  }
  bad(where, "dtype '" + descr + "' is not one torchport reads (little-endian bool, int8/16/32/64, uint8, "
                                 "float16/32/64)");
}

}  // namespace

bool is_npy(const std::string& bytes) { return bytes.size() >= 6 && bytes.compare(0, 6, "\x93NUMPY") == 0; }

NpyHeader read_npy_header(const std::string& bytes, const std::string& where) {
  if (!is_npy(bytes) || bytes.size() < 10) bad(where, "it is shorter than the .npy preamble");
  const auto major = static_cast<unsigned char>(bytes[6]);
  auto byte = [&](size_t i) { return static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])); };
  uint64_t header_len = 0;
  size_t offset = 0;
  if (major == 1) {
    header_len = byte(8) | byte(9) << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) bad(where, "it is shorter than the .npy preamble");
    header_len = byte(8) | byte(9) << 8 | byte(10) << 16 | byte(11) << 24;
    offset = 12;
  } else {
    bad(where, "format version " + std::to_string(major) + " (torchport reads 1, 2 and 3)");
  }
  if (header_len > kMaxHeaderBytes) {
    bad(where, "its header declares " + std::to_string(header_len) + " bytes, more than the limit of " +
                   std::to_string(kMaxHeaderBytes));
  }
  if (offset + header_len > bytes.size()) {
    bad(where, "its header declares " + std::to_string(header_len) + " bytes, the file has " +
                   std::to_string(bytes.size() - offset) + " after the preamble");
  }
  const std::string header = bytes.substr(offset, header_len);

  size_t p = value_at(header, "descr", where);
  if (p >= header.size() || header[p] != '\'') bad(where, "'descr' is not a simple dtype string (object or record arrays are refused)");
  const auto end = header.find('\'', p + 1);
  if (end == std::string::npos) bad(where, "its header's 'descr' is not closed");
  const auto [dtype, itemsize] = dtype_of(header.substr(p + 1, end - p - 1), where);

  p = value_at(header, "fortran_order", where);
  if (header.compare(p, 5, "False") != 0) bad(where, "it is in Fortran order; expected C order (numpy.ascontiguousarray)");

  p = value_at(header, "shape", where);
  if (p >= header.size() || header[p] != '(') bad(where, "its header's 'shape' is not a tuple");
  std::vector<int64_t> shape;
  uint64_t count = 1;
  uint64_t span = 1;  // the product of the sizes with 0 taken as 1: what the strides reach
  ++p;
  while (p < header.size() && header[p] != ')') {
    if (header[p] == ' ' || header[p] == ',') {
      ++p;
      continue;
    }
    if (header[p] < '0' || header[p] > '9') bad(where, "its header's 'shape' holds something other than sizes");
    uint64_t d = 0;
    while (p < header.size() && header[p] >= '0' && header[p] <= '9') {
      d = d * 10 + static_cast<uint64_t>(header[p] - '0');
      if (d > kMaxDim) bad(where, "a dimension is larger than " + std::to_string(kMaxDim));
      ++p;
    }
    if (shape.size() == kMaxDims) bad(where, "it has more than " + std::to_string(kMaxDims) + " dimensions");
    shape.push_back(static_cast<int64_t>(d));
    // Sizes and strides are int64 in a tensor: even an empty array (a 0 among the
    // sizes) must have strides that fit.
    const uint64_t kSpanMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / itemsize;
    if (d > 1 && span > kSpanMax / d) {
      bad(where, "its size overflows: the byte size or strides overflow 64 bits (shape dimension " +
                     std::to_string(shape.size() - 1) + " is " + std::to_string(d) + ")");
    }
    if (d > 1) span *= d;
    count *= d;
  }
  if (p >= header.size()) bad(where, "its header's 'shape' is not closed");
  NpyHeader out;
  out.dtype = dtype;
  out.shape = std::move(shape);
  out.data_offset = offset + header_len;
  out.data_bytes = count * itemsize;
  return out;
}

at::Tensor read_npy(const std::string& bytes, const std::string& where) {
  const NpyHeader h = read_npy_header(bytes, where);
  const uint64_t data = bytes.size() - h.data_offset;
  if (h.data_bytes != data) {
    bad(where, "shape " + std::to_string(h.shape.size()) + "-d needs " + std::to_string(h.data_bytes) +
                   " bytes of data, the file holds " + std::to_string(data));
  }
  at::Tensor t;
  try {
    t = at::empty(h.shape, at::TensorOptions().dtype(h.dtype));
  } catch (const std::bad_alloc&) {
    bad(where, "its " + std::to_string(data) + " bytes of data could not be allocated (out of memory)");
  }
  if (data > 0) std::memcpy(t.data_ptr(), bytes.data() + h.data_offset, data);
  return t;
}

}  // namespace torchport::detail
