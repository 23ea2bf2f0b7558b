#pragma once
// ExecuTorch programs (.pte) with torchport's records after them; see pte.cpp
// and docs/artifact.md for the layout. No ExecuTorch headers: the container is
// read (and the manifest shown) by a runtime built without ExecuTorch too.

#include <cstdint>
#include <string>
#include <string_view>

namespace torchport::detail {

/// What follows the program: manifest, golden file, then this footer.
inline constexpr char kPteTailMagic[8] = {'T', 'P', 'O', 'R', 'T', 'P', 'T', 'E'};
inline constexpr size_t kPteFooterBytes = 40;  // magic, version u32, reserved u32, three u64 sizes
inline constexpr uint32_t kPteTailVersion = 1;
/// The program's name in the payload checksum.
inline constexpr const char* kPteRecord = "model.pte";

/// True when `bytes` start like an ExecuTorch flatbuffer program ("ET" and two
/// digits at offset 4, the flatbuffers file identifier).
bool is_pte(std::string_view bytes);

/// The parts of a .pte artifact, as views into the file's bytes.
struct PteParts {
  std::string_view program;   ///< the ExecuTorch program, as ExecuTorch wrote it
  std::string_view manifest;  ///< empty without a torchport tail
  std::string_view golden;
};

/// Splits a .pte artifact; a tail whose sizes do not add up is BadArtifact
/// naming `where`.
PteParts split_pte(std::string_view bytes, const std::string& where);

/// The most memory one loaded method of a .pte may plan (its non-constant
/// buffers together); a program that plans more is refused before loading.
inline constexpr uint64_t kPtePlanCap = 2ull << 30;

/// Walks the program's flatbuffer (executorch/schema/program.fbs) before
/// ExecuTorch's loader follows it: every offset inside the program, value and
/// operator indices in range, every operator named, delegate calls with
/// arguments, the items of int, tensor and optional tensor lists in range and of
/// the list's type, constant tensors with data, and the memory plan within
/// `plan_cap` bytes. Throws BadArtifact naming `where`.
void check_pte_program(std::string_view program, const std::string& where, uint64_t plan_cap = kPtePlanCap);

}  // namespace torchport::detail
