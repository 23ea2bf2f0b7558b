// NumPy .npy arrays as inputs: the format's header parsed with bounds, the
// data copied into a tensor; nothing in the file is executed (no pickled objects).

#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace torchport::detail {

/// True when `bytes` starts with the .npy magic string.
bool is_npy(const std::string& bytes);

/// The array an .npy file holds (version 1, 2 or 3; little-endian bool, int8..int64,
/// uint8, float16/32/64; C order). Refuses with Error(BadInput) naming `where`: a
/// header over 64 KiB, more than 64 dimensions, a size that overflows, data shorter
/// or longer than the shape says, object arrays, big-endian or Fortran-order data.
at::Tensor read_npy(const std::string& bytes, const std::string& where);

}  // namespace torchport::detail
