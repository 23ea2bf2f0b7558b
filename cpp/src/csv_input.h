// CSV rows as inputs of a tabular model: columns matched by name against the
// manifest's features, numbers parsed strictly, categories one-hot encoded from
// the manifest's vocabulary. The only place this encoding lives (Python reaches
// it through the binding).

#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include <torchport/torchport.h>

namespace torchport::detail {

namespace limits {
constexpr uint64_t kCsvBytes = 256ull << 20;  ///< size of a CSV input file
constexpr uint64_t kCsvRows = 1'000'000;      ///< data rows in a CSV input file
constexpr uint64_t kCsvColumns = 10'000;      ///< cells in one CSV row
constexpr uint64_t kCsvCellBytes = 64 * 1024;  ///< bytes in one CSV cell
constexpr uint64_t kCsvValues = 64ull << 20;   ///< rows x encoded width (one-hot included): 256 MiB of float32
}  // namespace limits

/// True when `bytes` may be CSV text: not a zip, an .npy array or an image, and no NUL byte
/// in its first kilobyte.
bool looks_like_csv(const std::string& bytes);

/// The [rows, width] float input that `features` describe, from CSV text with a header
/// row. Columns are found by name (any order; columns that are no feature, such as the
/// label, are ignored); cells are trimmed of spaces and tabs; blank lines are skipped.
/// A numeric cell must be a finite decimal number; a categorical cell is one-hot over
/// its vocabulary (a value outside it is all zeros; an empty cell is refused). Throws
/// Error(BadInput) naming `where`, the line and the column.
at::Tensor read_csv_rows(const std::string& bytes, const std::vector<FeatureSpec>& features, const std::string& where);

}  // namespace torchport::detail
