// NumPy .npy arrays as inputs: the format's header parsed with bounds, the
// data copied into a tensor; nothing in the file is executed (no pickled objects).

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace torchport::detail {

/// True when `bytes` starts with the .npy magic string.
bool is_npy(const std::string& bytes);

/// What an .npy header declares.
struct NpyHeader {
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::vector<int64_t> shape;
  uint64_t data_offset = 0;  ///< where the data starts: preamble and header
  uint64_t data_bytes = 0;   ///< what the shape and dtype need
};

/// The preamble and header of an .npy file; `bytes` may stop anywhere after the
/// header (a prefix of the file is enough). Refuses what read_npy refuses in the header.
NpyHeader read_npy_header(const std::string& bytes, const std::string& where);

/// The array an .npy file holds (version 1, 2 or 3; little-endian bool, int8..int64,
/// uint8, float16/32/64; C order). Refuses with Error(BadInput) naming `where`: a
/// header over 64 KiB or that repeats a key, more than 64 dimensions, a byte size or
/// strides that overflow int64, data shorter
/// or longer than the shape says, object arrays, big-endian or Fortran-order data.
at::Tensor read_npy(const std::string& bytes, const std::string& where);

}  // namespace torchport::detail
