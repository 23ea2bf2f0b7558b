// An ExecuTorch program file (.pte) carries no free-form records, so torchport's
// manifest and golden examples follow the program in the same file:
//
//   [program bytes, as ExecuTorch wrote them][manifest.json][golden.pt]
//   [footer: "TPORTPTE", u32 version, u32 0, u64 program, u64 manifest, u64 golden]
//
// (little-endian). ExecuTorch's loader reads the program by the sizes in its own
// header and ignores what follows, so the file stays a plain .pte that any
// ExecuTorch runtime loads (examples/edge_app does). The sizes must add up to
// the file's size exactly; nothing is trusted before that is checked.

#include "pte.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include <torchport/torchport.h>

namespace torchport::detail {
namespace {

uint64_t le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint32_t le32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Where ExecuTorch's own data ends, from its extended header ("eh00" at byte 8:
// u32 header length, u64 program size, u64 segment base offset, u64 segment
// data size); 0 when there is no such header.
uint64_t program_end(std::string_view bytes) {
  if (bytes.size() < 40 || bytes.compare(8, 4, "eh00") != 0 || le32(bytes.data() + 12) < 32) return 0;
  const uint64_t program = le64(bytes.data() + 16), base = le64(bytes.data() + 24), data = le64(bytes.data() + 32);
  if (base == 0 || data == 0) return program;
  return base > UINT64_MAX - data ? UINT64_MAX : std::max(program, base + data);
}

}  // namespace

bool is_pte(std::string_view bytes) {
  return bytes.size() >= 8 && bytes[4] == 'E' && bytes[5] == 'T' && bytes[6] >= '0' && bytes[6] <= '9' &&
         bytes[7] >= '0' && bytes[7] <= '9';
}

PteParts split_pte(std::string_view bytes, const std::string& where) {
  PteParts parts;
  parts.program = bytes;
  if (bytes.size() < kPteFooterBytes ||
      std::memcmp(bytes.data() + bytes.size() - kPteFooterBytes, kPteTailMagic, sizeof(kPteTailMagic)) != 0) {
    // A bare ExecuTorch program (its signature is its contract), unless bytes
    // follow its data: then a torchport tail lost its end.
    const uint64_t end = program_end(bytes);
    if (end != 0 && bytes.size() > end) {
      throw Error(ErrorKind::BadArtifact,
                  where + ": " + std::to_string(bytes.size() - end) + " bytes follow the ExecuTorch program (" +
                      std::to_string(end) + " bytes) without torchport's footer: the file was truncated or modified");
    }
    return parts;
  }
  const char* footer = bytes.data() + bytes.size() - kPteFooterBytes;
  const uint32_t version = le32(footer + 8);
  if (version != kPteTailVersion) {
    throw Error(ErrorKind::BadArtifact, where + ": torchport tail version " + std::to_string(version) +
                                            ", this runtime reads version " + std::to_string(kPteTailVersion));
  }
  const uint64_t program = le64(footer + 16), manifest = le64(footer + 24), golden = le64(footer + 32);
  const uint64_t body = bytes.size() - kPteFooterBytes;
  // Each size no larger than the body before adding, so the sum cannot overflow.
  if (program > body || manifest > body || golden > body || program + manifest + golden != body) {
    throw Error(ErrorKind::BadArtifact,
                where + ": torchport tail sizes (program " + std::to_string(program) + ", manifest " +
                    std::to_string(manifest) + ", golden " + std::to_string(golden) + " bytes) do not add up to the " +
                    std::to_string(body) + " bytes before the footer: the file was truncated or modified");
  }
  parts.program = bytes.substr(0, program);
  parts.manifest = bytes.substr(program, manifest);
  parts.golden = bytes.substr(program + manifest, golden);
  if (!is_pte(parts.program)) {
    throw Error(ErrorKind::BadArtifact, where + ": the bytes before torchport's tail are not an ExecuTorch program");
  }
  return parts;
}

}  // namespace torchport::detail
