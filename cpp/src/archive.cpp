// The archive as a zip of records: torchport's own files inside it, and the
// model payload checksum, a digest over every record except the manifest (which
// holds the checksum) and the per-save serialization id, then the manifest
// itself without its checksum field. torchport's export has the runtime compute
// the same digest (payload_checksum through the binding). The checksum names
// its scheme: "xxh3-128+manifest:<hex>" (what export writes: the manifest is
// covered, so an edited shape or name is caught), or, in older exports,
// "xxh3-128:<hex>" / "sha256:<hex>" over the records alone (still verified for
// TorchScript; a .pt2 or .pte must carry the covering scheme).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <map>
#include <optional>
#include <tuple>
#include <sstream>

#include <caffe2/serialize/inline_container.h>
#include <nlohmann/json.hpp>
// Header-only: no shared library to ship beside the runtime.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <torchport/tools.h>

#include "detail.h"
#include "json_document.h"
#include "onnx_file.h"
#include "pte.h"
#include "reader.h"

namespace torchport::detail {
namespace {

// FIPS 180-4 SHA-256; a digest for corruption, not for authentication.
class Sha256 {
 public:
  void update(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    length_ += size;
    while (size > 0) {
      const size_t take = std::min(size, sizeof(block_) - used_);
      std::memcpy(block_ + used_, p, take);
      used_ += take;
      p += take;
      size -= take;
      if (used_ == sizeof(block_)) {
        compress(block_);
        used_ = 0;
      }
    }
  }

  std::string hex() {
    const uint64_t bits = length_ * 8;
    const uint8_t one = 0x80, zero = 0;
    update(&one, 1);
    while (used_ != 56) update(&zero, 1);
    uint8_t tail[8];
    for (int i = 0; i < 8; ++i) tail[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
    update(tail, 8);
    std::ostringstream out;
    for (uint32_t h : h_) out << std::hex << std::setw(8) << std::setfill('0') << h;
    return out.str();
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

  void compress(const uint8_t* chunk) {
    static constexpr uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      w[i] = uint32_t(chunk[4 * i]) << 24 | uint32_t(chunk[4 * i + 1]) << 16 |
             uint32_t(chunk[4 * i + 2]) << 8 | uint32_t(chunk[4 * i + 3]);
    }
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h_[0] += a; h_[1] += b; h_[2] += c; h_[3] += d;
    h_[4] += e; h_[5] += f; h_[6] += g; h_[7] += h;
  }

  uint32_t h_[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  uint8_t block_[64] = {};
  size_t used_ = 0;
  uint64_t length_ = 0;
};

// The digests a payload checksum may name; XXH3-128 hashes at memory speed
// (SHA-256 above tripled the load time of a ResNet-18).
class PayloadHash {
 public:
  explicit PayloadHash(std::string algorithm) : algorithm_(std::move(algorithm)) {
    if (algorithm_ == kXxh3 || algorithm_ == kManifestCovered) XXH3_128bits_reset(&xxh_);
  }

  void update(const void* data, size_t size) {
    if (algorithm_ != "sha256") {
      XXH3_128bits_update(&xxh_, data, size);
    } else {
      sha_.update(data, size);
    }
  }

  std::string digest() {
    if (algorithm_ == "sha256") return algorithm_ + ":" + sha_.hex();
    const XXH128_hash_t h = XXH3_128bits_digest(&xxh_);
    std::ostringstream out;
    out << algorithm_ << ":" << std::hex << std::setfill('0') << std::setw(16) << h.high64 << std::setw(16)
        << h.low64;
    return out.str();
  }

  static constexpr const char* kXxh3 = "xxh3-128";

  /// Whether the scheme hashes the manifest after the records.
  bool covers_manifest() const { return algorithm_ == kManifestCovered; }

 private:
  std::string algorithm_;
  XXH3_state_t xxh_{};
  Sha256 sha_;
};

// torchport's files: under extra/ in a TorchScript archive (its extra files),
// at the top of a .pt2 package (AOTInductor's loaders ignore them there; torch's
// Python loader reads extra/ as text, and the golden file is binary).
const std::string kManifestRecord = std::string("extra/") + kManifestFile;
const std::string kGoldenRecord = std::string("extra/") + kGoldenFile;
// The manifest where either zip format keeps it (it holds the checksum), and the per-save id.
const std::string kSkipped[] = {kManifestRecord, kManifestFile, ".data/serialization_id"};

std::string record_string(caffe2::serialize::PyTorchStreamReader& reader, const std::string& name) {
  if (!reader.hasRecord(name)) return "";
  auto [data, size] = reader.getRecord(name);
  return std::string(static_cast<const char*>(data.get()), size);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The archive's pickles and TorchScript source, walked for structure before
// LibTorch's unpickler and compiler see them.
void check_records(caffe2::serialize::PyTorchStreamReader& reader, const std::string& path) {
  for (const auto& name : reader.getAllRecords()) {
    const bool pickle = ends_with(name, "pkl");
    const bool code = name.rfind("code/", 0) == 0 && ends_with(name, ".py");
    if (!pickle && !code) continue;
    auto [data, size] = reader.getRecord(name);
    const std::string where = "artifact '" + path + "' record '" + name + "'";
    const char* bytes = static_cast<const char*>(data.get());
    if (pickle) {
      const auto needs = check_pickle(bytes, size, where, ErrorKind::BadArtifact);
      // The model's tensors: data.pkl's under data/, constants.pkl's under constants/.
      const auto slash = name.find('/');
      if (slash == std::string::npos && (name == "data.pkl" || name == "constants.pkl")) {
        check_storages(reader, needs, name.substr(0, name.size() - 4) + "/", where, ErrorKind::BadArtifact);
      }
    } else {
      check_code(bytes, size, where, ErrorKind::BadArtifact);
    }
  }
}

// name, a zero byte, the size as 8 little-endian bytes, then the bytes.
void hash_record(PayloadHash& hash, const std::string& name, const void* data, size_t size) {
  hash.update(name.c_str(), name.size() + 1);
  uint8_t le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(static_cast<uint64_t>(size) >> (8 * i));
  hash.update(le, sizeof(le));
  hash.update(data, size);
}

// The manifest as the checksum covers it: parsed, its "checksum" field removed,
// written back compactly with sorted keys, so that the digest does not depend
// on the checksum it is stored in, nor on whitespace or key order.
// Parsed by the one bounded reader: nlohmann's dump and destructor recurse, so
// a manifest nested 100,000 deep overflowed the stack here (SIGSEGV) when a
// checksum was computed before the manifest was parsed.
std::string manifest_for_checksum(std::string_view text, const std::string& where) {
  nlohmann::json doc = parse_json_object(std::string(text), where + " torchport/manifest.json", limits::kJsonBytes);
  doc.erase("checksum");
  return doc.dump();
}

// The last record of a covering digest; the name cannot clash with a zip record's.
void hash_manifest(PayloadHash& hash, std::string_view manifest_json, const std::string& where) {
  if (!hash.covers_manifest()) return;
  if (manifest_json.empty()) {
    throw Error(ErrorKind::BadArtifact, where + ": holds no torchport/manifest.json for the " +
                                            std::string(kManifestCovered) + " checksum to cover");
  }
  const std::string canonical = manifest_for_checksum(manifest_json, where);
  hash_record(hash, "\x01torchport manifest", canonical.data(), canonical.size());
}

// A .pte's payload as two records, in name order: the program and the golden
// file, then the manifest.
std::string pte_checksum(const PteParts& parts, const std::string& algorithm, const std::string& where) {
  PayloadHash hash(algorithm);
  hash_record(hash, kPteRecord, parts.program.data(), parts.program.size());
  if (!parts.golden.empty()) hash_record(hash, kGoldenFile, parts.golden.data(), parts.golden.size());
  hash_manifest(hash, parts.manifest, where);
  return hash.digest();
}

}  // namespace

void verify_checksum(const ArchiveFiles& files, const std::string& path) {
  const std::string& recorded = files.manifest->checksum;
  const bool strict = files.format != "torchscript";
  if (recorded.empty()) {
    if (!strict) return;  // TorchScript exports before checksums
    throw Error(ErrorKind::BadArtifact,
                "'" + path + "': torchport/manifest.json records no checksum; a " +
                    (files.format == "aoti" ? std::string(".pt2") : ".pte") +
                    " must carry one (\"checksum\": \"" + kManifestCovered +
                    ":<hex>\"): export it again with torchport");
  }
  if (strict && checksum_algorithm(recorded) != kManifestCovered) {
    throw Error(ErrorKind::BadArtifact,
                "'" + path + "': checksum " + recorded.substr(0, recorded.find(':')) +
                    " does not cover the manifest; a " + (files.format == "aoti" ? std::string(".pt2") : ".pte") +
                    " must carry a " + kManifestCovered + " checksum: export it again with torchport");
  }
  if (files.checksum != recorded) {
    throw Error(ErrorKind::BadArtifact,
                "'" + path + "': model payload checksum mismatch (manifest " + recorded + ", file " +
                    files.checksum + "): the file or its manifest was corrupted or modified after export");
  }
}

namespace {

// An ExecuTorch program with torchport's tail (pte.cpp). The program itself is
// checked by ExecuTorch's verifier when the backend loads it.
ArchiveFiles read_pte(const std::string& path, const std::string& bytes, Checksum checksum) {
  ArchiveFiles files;
  files.format = "executorch";
  const PteParts parts = split_pte(bytes, "artifact '" + path + "'");
  files.manifest_json = std::string(parts.manifest);
  if (!files.manifest_json.empty()) {
    files.manifest = parse_manifest(files.manifest_json, "'" + path + "' torchport/manifest.json");
    if (checksum != Checksum::Skip) {
      files.checksum = pte_checksum(parts, checksum_algorithm(files.manifest->checksum), "'" + path + "'");
    }
    if (checksum == Checksum::Verify) verify_checksum(files, path);
  } else if (checksum == Checksum::Verify) {
    throw Error(ErrorKind::BadArtifact,
                "'" + path + "': a bare ExecuTorch program without torchport's manifest and checksum "
                "(no torchport tail); export it with torchport, or load it with verify_checksum off "
                "to trust it as it is");
  }
  files.golden_bytes = std::string(parts.golden);
  return files;
}

}  // namespace

std::string checksum_algorithm(const std::string& checksum) {
  const auto colon = checksum.find(':');
  return colon == std::string::npos ? kDefaultChecksum : checksum.substr(0, colon);
}

std::string payload_checksum(caffe2::serialize::PyTorchStreamReader& reader, const std::string& bytes,
                             const std::vector<ZipRecord>& zip, const std::string& algorithm,
                             const std::string& manifest_json, const std::string& where) {
  // Stored (uncompressed) records are hashed where they lie in the file, not
  // copied out first; the reader names records without the archive's folder.
  std::map<std::string, const ZipRecord*> stored;
  for (const auto& r : zip) {
    const auto slash = r.name.find('/');
    if (r.method == 0 && r.compressed == r.uncompressed && slash != std::string::npos) {
      stored.emplace(r.name.substr(slash + 1), &r);
    }
  }
  std::vector<std::string> names = reader.getAllRecords();
  std::sort(names.begin(), names.end());
  PayloadHash hash(algorithm);
  for (const auto& name : names) {
    if (std::find(std::begin(kSkipped), std::end(kSkipped), name) != std::end(kSkipped)) continue;
    const auto found = stored.find(name);
    const ZipRecord* r = found == stored.end() ? nullptr : found->second;
    const size_t size = r != nullptr ? reader.getRecordSize(name) : 0;
    const bool in_place = r != nullptr && size == r->uncompressed && r->data <= bytes.size() &&
                          size <= bytes.size() - r->data;
    at::DataPtr copy;
    const void* data = nullptr;
    size_t length = size;
    if (in_place) {
      data = bytes.data() + r->data;
    } else {
      std::tie(copy, length) = reader.getRecord(name);
      data = copy.get();
    }
    hash_record(hash, name, data, length);
  }
  hash_manifest(hash, manifest_json, where);
  return hash.digest();
}

ArchiveFiles read_archive(const std::string& path, std::shared_ptr<const std::string> bytes, Checksum checksum) {
  if (is_pte(*bytes)) return read_pte(path, *bytes, checksum);
  // An ONNX model carries no payload checksum: the protobuf is not
  // canonical, and ONNX Runtime parses the graph it was given.
  const bool onnx_name = path.size() > 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
  std::optional<OnnxRecords> onnx;
  if (onnx_name) {
    onnx = read_onnx_records(*bytes, "artifact '" + path + "'");
  } else if (looks_like_onnx(*bytes)) {
    // One byte is a weak sign: a file not named .onnx is an ONNX model only
    // when its protobuf walks; anything else gets the archive's diagnosis.
    try {
      onnx = read_onnx_records(*bytes, "artifact '" + path + "'");
    } catch (const Error&) {
    }
  }
  if (onnx) {
    const OnnxRecords& records = *onnx;
    ArchiveFiles files;
    files.format = "onnx";
    files.manifest_json = records.manifest_json;
    if (!files.manifest_json.empty()) {
      files.manifest = parse_manifest(files.manifest_json, "'" + path + "' torchport/manifest.json");
    }
    files.golden_bytes = records.golden_bytes;
    return files;
  }
  ArchiveFiles files;
  const std::string where = "artifact '" + path + "'";
  const auto zip = check_zip_as(*bytes, where, "not a loadable TorchScript archive", ErrorKind::BadArtifact);
  try {
    caffe2::serialize::PyTorchStreamReader reader(memory_reader(bytes));
    check_records(reader, path);
    files.format = is_aoti_package(reader.getAllRecords()) ? "aoti" : "torchscript";
    const std::string folder = files.format == "aoti" ? "" : "extra/";
    files.manifest_json = record_string(reader, folder + kManifestFile);
    if (!files.manifest_json.empty()) {
      files.manifest = parse_manifest(files.manifest_json, "'" + path + "' torchport/manifest.json");
      // Hashed with the algorithm the manifest names (old artifacts: sha256).
      if (checksum != Checksum::Skip) {
        files.checksum = payload_checksum(reader, *bytes, zip, checksum_algorithm(files.manifest->checksum),
                                          files.manifest_json, where);
      }
      if (checksum == Checksum::Verify) verify_checksum(files, path);
    } else if (files.format == "aoti") {
      // AOTInductor's kernels do not check their inputs: the manifest's shapes
      // and dtypes are the only guard, so a package without one never runs.
      throw Error(ErrorKind::BadArtifact,
                  where + " is an AOTInductor package without torchport's records (no " + kManifestFile +
                      " at the top of the package): its inputs cannot be checked before its kernels run; "
                      "export it with torchport");
    }
    files.golden_bytes = record_string(reader, folder + kGoldenFile);
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Error(ErrorKind::BadArtifact, where + " holds more data than can be allocated");
  } catch (const std::exception& e) {
    throw Error(ErrorKind::BadArtifact, where + " is not a loadable TorchScript archive: " + brief(e));
  }
  return files;
}

std::string file_checksum(const std::string& bytes) {
  const XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
  std::ostringstream out;
  out << kFileChecksum << ":" << std::hex << std::setfill('0') << std::setw(16) << h.high64 << std::setw(16)
      << h.low64;
  return out.str();
}

std::string payload_checksum(const std::string& bytes, const std::string& where, const std::string& algorithm) {
  if (is_pte(bytes)) return pte_checksum(split_pte(bytes, where), algorithm, where);
  const auto zip = check_zip(bytes, where, ErrorKind::BadArtifact);
  try {
    caffe2::serialize::PyTorchStreamReader reader(memory_reader(std::make_shared<const std::string>(bytes)));
    const std::string folder = is_aoti_package(reader.getAllRecords()) ? "" : "extra/";
    return payload_checksum(reader, bytes, zip, algorithm, record_string(reader, folder + kManifestFile), where);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::BadArtifact, where + " is not a TorchScript archive: " + brief(e));
  }
}

}  // namespace torchport::detail
