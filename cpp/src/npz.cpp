#include "npz.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <string>

#include <zlib.h>

#include "npy.h"
#include "reader.h"

namespace torchport::detail {
namespace {

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw Error(ErrorKind::BadInput, where + " is not a readable .npz archive: " + what);
}

uint64_t le(const std::string& b, uint64_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(b[pos + i]);
  return v;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// "arr_12.npy" -> 12; -1 for any other name.
int64_t positional_index(const std::string& name) {
  const std::string stem = name.substr(0, name.size() - 4);
  if (stem.size() < 5 || stem.compare(0, 4, "arr_") != 0 || stem.size() > 4 + 9) return -1;
  int64_t n = 0;
  for (size_t i = 4; i < stem.size(); ++i) {
    if (stem[i] < '0' || stem[i] > '9') return -1;
    n = n * 10 + (stem[i] - '0');
  }
  if (stem.size() > 5 && stem[4] == '0') return -1;  // "arr_01" is a name, not a position
  return n;
}

// Deflate's densest output: 258 bytes from each 2-bit code of a stored
// Huffman block, about 1032:1; a member declaring more cannot be honest.
constexpr uint64_t kDeflateRatio = 1032;
constexpr uint64_t kNpyPrefix = 12 + 64 * 1024;  // the .npy preamble and its largest header

// Up to `want` bytes from the start of a raw deflate stream, into a small buffer.
std::string inflate_prefix(const std::string& b, const ZipRecord& r, uint64_t want, const std::string& at) {
  std::string out(want, '\0');
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) bad(at, "zlib could not start");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(b.data() + r.data));
  z.avail_in = static_cast<uInt>(std::min<uint64_t>(r.compressed, UINT_MAX));
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(want);
  while (z.avail_out > 0) {
    const int rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK) break;  // damaged, or no progress: what came out is checked by the caller
  }
  out.resize(want - z.avail_out);
  inflateEnd(&z);
  return out;
}

// A member's bytes: stored as they are, or deflated (raw deflate) to exactly the declared size.
std::string member_bytes(const std::string& b, const ZipRecord& r, const std::string& at) {
  std::string out;
  if (r.method == 0) {
    out = b.substr(r.data, r.compressed);
  } else {
    // Nothing of the declared size is allocated before two checks: that deflate
    // can produce it from the compressed bytes, and that the .npy header it
    // starts with needs exactly that many bytes.
    if (r.uncompressed > r.compressed * kDeflateRatio + 1024) {
      bad(at, "it declares " + std::to_string(r.uncompressed) + " inflated bytes from " +
                  std::to_string(r.compressed) + " compressed bytes, more than deflate can produce (about " +
                  std::to_string(kDeflateRatio) + ":1)");
    }
    const std::string prefix = inflate_prefix(b, r, std::min<uint64_t>(r.uncompressed, kNpyPrefix), at);
    const NpyHeader header = read_npy_header(prefix, at);
    if (header.data_offset + header.data_bytes != r.uncompressed) {
      bad(at, "its .npy header needs " + std::to_string(header.data_offset + header.data_bytes) +
                  " bytes, the member declares " + std::to_string(r.uncompressed));
    }
    try {
      out.resize(r.uncompressed);
    } catch (const std::bad_alloc&) {
      bad(at, "its " + std::to_string(r.uncompressed) + " inflated bytes could not be allocated (out of memory)");
    }
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) bad(at, "zlib could not start");
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(b.data() + r.data));
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    uint64_t in_left = r.compressed, out_left = r.uncompressed;
    int rc = Z_OK;
    // zlib counts in uInt: feed and drain in chunks so that no size is truncated.
    while (rc == Z_OK) {
      const uInt in_now = static_cast<uInt>(std::min<uint64_t>(in_left, UINT_MAX));
      const uInt out_now = static_cast<uInt>(std::min<uint64_t>(out_left, UINT_MAX));
      z.avail_in = in_now;
      z.avail_out = out_now;
      rc = inflate(&z, Z_NO_FLUSH);
      in_left -= in_now - z.avail_in;
      out_left -= out_now - z.avail_out;
      if (rc == Z_OK && in_now == z.avail_in && out_now == z.avail_out) break;  // no progress: short or long data
      if (rc == Z_BUF_ERROR) break;
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END || out_left != 0) {
      bad(at, "its deflated data does not inflate to the " + std::to_string(r.uncompressed) + " bytes it declares");
    }
  }
  // The CRC-32 of the local header (zero there when a data descriptor follows: then none is checked).
  const uint64_t flags = le(b, r.offset + 6, 2), crc = le(b, r.offset + 14, 4);
  if (!(flags & 0x8)) {
    uLong actual = crc32(0L, Z_NULL, 0);
    for (size_t done = 0; done < out.size();) {
      const uInt n = static_cast<uInt>(std::min<size_t>(out.size() - done, UINT_MAX));
      actual = crc32(actual, reinterpret_cast<const Bytef*>(out.data() + done), n);
      done += n;
    }
    if (actual != crc) bad(at, "its CRC-32 does not match its data (the file is damaged)");
  }
  return out;
}

}  // namespace

bool is_npz(const std::string& bytes) {
  if (bytes.size() < 30 || bytes.compare(0, 4, "PK\x03\x04") != 0) return false;
  const uint64_t name_len = le(bytes, 26, 2);
  if (30 + name_len > bytes.size()) return false;
  const std::string name = bytes.substr(30, name_len);
  return ends_with(name, ".npy") && name.find('/') == std::string::npos;
}

TensorBundle read_npz(const std::string& bytes, const std::string& where) {
  const auto records = check_zip(bytes, where, ErrorKind::BadInput);
  if (records.empty()) bad(where, "it holds no arrays");
  std::map<int64_t, at::Tensor> positional;
  std::map<std::string, at::Tensor> named;
  for (const auto& r : records) {
    const std::string at = where + " member '" + r.name + "'";
    if (!ends_with(r.name, ".npy") || r.name.size() == 4) bad(where, "member '" + r.name + "' is not a .npy array");
    at::Tensor t = read_npy(member_bytes(bytes, r, at), at);
    const int64_t index = positional_index(r.name);
    if (index >= 0) {
      positional[index] = std::move(t);
    } else {
      named[r.name.substr(0, r.name.size() - 4)] = std::move(t);
    }
  }
  if (!positional.empty() && !named.empty()) {
    bad(where, "it mixes positional arrays (arr_0, ...) with named ones ('" + named.begin()->first +
                   "'); save them all by input name (numpy.savez(x=..., y=...)) or all by position");
  }
  TensorBundle bundle;
  if (!named.empty()) {
    bundle.by_name = true;
    bundle.named = std::move(named);
    return bundle;
  }
  int64_t expected = 0;
  for (auto& [index, t] : positional) {
    if (index != expected) bad(where, "it has arr_" + std::to_string(index) + " but no arr_" + std::to_string(expected));
    bundle.positional.push_back(std::move(t));
    ++expected;
  }
  return bundle;
}

}  // namespace torchport::detail
