// NumPy .npz archives as inputs: a zip of .npy members (numpy.savez stores them,
// numpy.savez_compressed deflates them), read through the reader's zip checks and
// inflated with zlib within the declared sizes; each member through read_npy.

#pragma once

#include <string>

#include <torchport/io.h>

namespace torchport::detail {

/// True when `bytes` is a zip whose first record is a top-level ".npy" member (a
/// torch.save file's records sit in a folder: "archive/data.pkl").
bool is_npz(const std::string& bytes);

/// The arrays of an .npz: by position when the members are numpy's own names for
/// positional arrays ("arr_0.npy", "arr_1.npy", ...: savez(a, b)), else by input name
/// ("x.npy" -> "x": savez(x=a)). Refuses with Error(BadInput) naming `where`: what
/// check_zip refuses (record count, sizes against the file and the inflation limits,
/// methods other than stored and deflate), a member that is not "*.npy", a mix of
/// arr_N and named members, an arr_N sequence with gaps, a deflated member that
/// inflates to another size than declared, a CRC mismatch, or a member read_npy refuses.
TensorBundle read_npz(const std::string& bytes, const std::string& where);

}  // namespace torchport::detail
