#pragma once
// The one reader of every file the runtime opens: artifacts, golden files and
// tensor files. Files are hostile until checked: only regular files are read,
// zip directories are checked against the limits before anything inflates,
// pickles are walked for structure before LibTorch's unpickler builds anything.
// The limits are documented in docs/reliability.md.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/ivalue.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>

#include <torchport/torchport.h>

namespace torchport::detail {

namespace limits {
constexpr uint64_t kZipRecords = 100'000;            ///< records in one zip archive
constexpr uint64_t kZipNameBytes = 4'096;            ///< bytes in one record name
constexpr uint64_t kInflatedRecord = 256ull << 20;   ///< a compressed record, inflated
constexpr uint64_t kInflatedTotal = 1ull << 30;      ///< all compressed records, inflated
constexpr int kPickleDepth = 1'000;                  ///< containers nested in a pickle
constexpr uint64_t kPickleMemo = 10'000'000;         ///< memo slots a pickle may use
constexpr uint64_t kPickleTextArg = 1ull << 20;      ///< a newline-terminated pickle argument
constexpr int kJsonDepth = 64;                       ///< nesting in manifest.json
constexpr uint64_t kJsonBytes = 16ull << 20;         ///< size of manifest.json
constexpr int kCodeDepth = 256;                      ///< bracket nesting in TorchScript code
constexpr uint64_t kCodeIndent = 1'024;              ///< indentation of a TorchScript code line
}  // namespace limits

/// The bytes of a file, read once. Anything that is not a regular file (a
/// directory, FIFO, device or socket) is refused before it can block; `what`
/// names the file in errors ("artifact", "input file") and `kind` is the
/// error kind a bad file is.
std::shared_ptr<const std::string> read_regular_file(const std::string& path, const std::string& what,
                                                      ErrorKind kind);

/// One record of a zip archive's central directory.
struct ZipRecord {
  std::string name;
  uint64_t compressed = 0, uncompressed = 0, offset = 0;
  uint64_t data = 0;  ///< where its (compressed) bytes start, checked to lie inside the file
  uint16_t method = 0;
};

/// Checks a zip archive's directory: record count, names (unique, bounded),
/// declared sizes against the file and against the inflation limits, storage
/// methods. Throws Error(kind) naming `where` and the limit.
std::vector<ZipRecord> check_zip(const std::string& bytes, const std::string& where, ErrorKind kind);

/// check_zip, with errors worded "<where> is <what>: <why>" ("not a loadable TorchScript archive").
std::vector<ZipRecord> check_zip_as(const std::string& bytes, const std::string& where, const std::string& what,
                                    ErrorKind kind);

/// A tensor storage a pickle refers to: the record key and the bytes it must hold.
struct StorageNeed {
  std::string key;
  uint64_t bytes = 0;
};

/// Walks a pickle without building anything: known opcodes only, arguments
/// inside the data, nesting depth and memo within the limits. Returns the
/// storages it refers to.
std::vector<StorageNeed> check_pickle(const char* data, size_t size, const std::string& where, ErrorKind kind);

/// Refuses storages whose record (`prefix` + key) is missing or smaller than
/// the pickle declares (LibTorch would read past the record).
void check_storages(caffe2::serialize::PyTorchStreamReader& reader, const std::vector<StorageNeed>& needs,
                    const std::string& prefix, const std::string& where, ErrorKind kind);

/// Bracket nesting and indentation of TorchScript source within the limits.
void check_code(const char* data, size_t size, const std::string& where, ErrorKind kind);

/// Refuses a tensor read from a file whose sizes, strides and offset reach
/// past its storage (LibTorch's unpickler does not check): reading it would
/// read outside the buffer.
void check_in_bounds(const at::Tensor& t, const std::string& where, ErrorKind kind);

/// A LibTorch read adapter over bytes in memory.
std::shared_ptr<caffe2::serialize::ReadAdapterInterface> memory_reader(
    std::shared_ptr<const std::string> bytes);

/// Reads a torch.save file (zip format) held in memory: its directory and its
/// pickles are checked first; nothing in it is executed.
c10::IValue load_tensor_archive(const std::string& bytes, const std::string& where, ErrorKind kind);

}  // namespace torchport::detail
