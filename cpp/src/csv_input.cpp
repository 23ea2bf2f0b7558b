#include "csv_input.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/ATen.h>

#include "image_input.h"
#include "npy.h"

namespace torchport::detail {
namespace {

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw Error(ErrorKind::BadInput, where + ": " + what);
}

std::string shown(const std::string& s) {
  return "'" + (s.size() > 60 ? s.substr(0, 57) + "..." : s) + "'";
}

// The length of the whitespace character Python's str.strip() removes at
// s[i] (ASCII or UTF-8), or 0: training strips cells with str.strip(), so the
// runtime strips exactly the same characters.
size_t space_at(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  const unsigned c = b(i);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  if (c == 0xC2 && (b(i + 1) == 0x85 || b(i + 1) == 0xA0)) return 2;  // U+0085, U+00A0
  if (c == 0xE1 && b(i + 1) == 0x9A && b(i + 2) == 0x80) return 3;   // U+1680
  if (c == 0xE2 && b(i + 1) == 0x80 && (b(i + 2) <= 0x8A || b(i + 2) == 0xA8 || b(i + 2) == 0xA9 || b(i + 2) == 0xAF)) {
    return b(i + 2) >= 0x80 ? 3 : 0;  // U+2000..U+200A, U+2028, U+2029, U+202F
  }
  if (c == 0xE2 && b(i + 1) == 0x81 && b(i + 2) == 0x9F) return 3;   // U+205F
  if (c == 0xE3 && b(i + 1) == 0x80 && b(i + 2) == 0x80) return 3;   // U+3000
  return 0;
}

// Where the whitespace character ending just before `end` starts, or `end`.
size_t space_before(const std::string& s, size_t end) {
  for (size_t n = 1; n <= 3 && n <= end; ++n) {
    if (space_at(s, end - n) == n) return end - n;
  }
  return end;
}

std::string trimmed(const std::string& s) {
  size_t first = 0, last = s.size();
  while (first < last) {
    const size_t n = space_at(s, first);
    if (n == 0) break;
    first += n;
  }
  while (last > first) {
    const size_t p = space_before(s, last);
    if (p == last || p < first) break;
    last = p;
  }
  return s.substr(first, last - first);
}

// Python's float() takes '_' between two digits ("1_000"); anything else with
// '_' it refuses. The same here, and the underscores dropped before parsing.
bool python_underscores(std::string& text) {
  if (text.find('_') == std::string::npos) return true;
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '_') {
      out.push_back(text[i]);
      continue;
    }
    if (i == 0 || i + 1 == text.size() || !digit(text[i - 1]) || !digit(text[i + 1])) return false;
  }
  text = std::move(out);
  return true;
}

// One record of the file: its cells, and the line it starts on (1-based).
struct Record {
  std::vector<std::string> cells;
  size_t line = 0;
};

// RFC 4180 records: comma-separated, a cell in double quotes may hold commas, newlines
// and "" for a quote; \r\n or \n ends a record. Bounded by the limits above.
class Records {
 public:
  Records(const std::string& bytes, const std::string& where) : s_(bytes), where_(where) {}

  bool next(Record& r) {
    if (pos_ >= s_.size()) return false;
    r.cells.clear();
    r.line = line_;
    std::string cell;
    for (;;) {
      const bool at_end = pos_ >= s_.size();
      const char c = at_end ? '\n' : s_[pos_];
      if (at_end || c == '\n' || c == ',') {
        if (!at_end) ++pos_;
        push(r, cell);
        if (c == ',' && !at_end) continue;
        ++line_;
        return true;
      }
      ++pos_;
      if (c == '\r' && pos_ < s_.size() && s_[pos_] == '\n') continue;  // \r\n
      if (c == '"' && trimmed(cell).empty()) {
        cell.clear();
        quoted_cell(cell, r.line);
        continue;
      }
      append(cell, c);
    }
  }

 private:
  void append(std::string& cell, char c) {
    if (c == '\0') bad(where_, "line " + std::to_string(line_) + " holds a NUL byte; expected CSV text");
    if (cell.size() == limits::kCsvCellBytes) {
      bad(where_, "line " + std::to_string(line_) + " has a cell over the limit of " +
                      std::to_string(limits::kCsvCellBytes) + " bytes");
    }
    cell.push_back(c);
  }

  void push(Record& r, std::string& cell) {
    if (r.cells.size() == limits::kCsvColumns) {
      bad(where_, "line " + std::to_string(r.line) + " has more than the limit of " +
                      std::to_string(limits::kCsvColumns) + " cells");
    }
    r.cells.push_back(trimmed(cell));
    cell.clear();
  }

  void quoted_cell(std::string& cell, size_t start) {
    for (;;) {
      if (pos_ >= s_.size()) bad(where_, "line " + std::to_string(start) + " opens a quoted cell that is never closed");
      const char c = s_[pos_++];
      if (c == '"') {
        if (pos_ < s_.size() && s_[pos_] == '"') {
          ++pos_;
          append(cell, '"');
          continue;
        }
        // Only spaces may follow the closing quote before the cell ends.
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
        if (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != '\n' && s_[pos_] != '\r') {
          bad(where_, "line " + std::to_string(line_) + " has text after a quoted cell's closing quote");
        }
        return;
      }
      if (c == '\n') ++line_;
      append(cell, c);
    }
  }

  const std::string& s_;
  const std::string& where_;
  size_t pos_ = 0, line_ = 1;
};

float number(const std::string& cell, const std::string& at) {
  if (cell.empty()) bad(at, "is empty; expected a number");
  // ASCII only: Python's float() also reads other scripts' digits ("\u0663"),
  // which training (data.py _number) refuses as numbers too.
  std::string text = cell;
  for (const char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) bad(at, "holds " + shown(cell) + "; expected a number (ASCII digits)");
  }
  if (!python_underscores(text)) bad(at, "holds " + shown(cell) + "; expected a number");
  const char* first = text.data();
  const char* last = text.data() + text.size();
  if (*first == '+') {  // Python's float() takes a leading '+'; from_chars does not
    ++first;
    if (first < last && (*first == '-' || *first == '+')) bad(at, "holds " + shown(cell) + "; expected a number");
  }
  double value = 0;
  const auto [end, ec] = std::from_chars(first, last, value);
  if (ec == std::errc::result_out_of_range || (ec == std::errc() && end == last && !std::isfinite(value))) {
    bad(at, "holds " + shown(cell) + "; expected a finite number (NaN and Inf are refused)");
  }
  if (ec != std::errc() || end != last) bad(at, "holds " + shown(cell) + "; expected a number");
  if (std::fabs(value) > 3.4028234663852886e38) bad(at, "holds " + shown(cell) + ", out of float32 range");
  return static_cast<float>(value);
}

}  // namespace

bool looks_like_csv(const std::string& bytes) {
  if (bytes.compare(0, 4, "PK\x03\x04") == 0 || is_npy(bytes)) return false;
  if (is_image(bytes)) return false;
  return std::memchr(bytes.data(), '\0', std::min<size_t>(bytes.size(), 1024)) == nullptr;
}

namespace {

at::Tensor read_rows(const std::string& bytes, const std::vector<FeatureSpec>& features, const std::string& where) {
  if (bytes.size() > limits::kCsvBytes) {
    bad(where, "has " + std::to_string(bytes.size()) + " bytes, more than the CSV limit of " +
                   std::to_string(limits::kCsvBytes));
  }
  Records records(bytes, where);
  Record header;
  while (records.next(header)) {
    bool blank = true;
    for (const auto& c : header.cells) blank = blank && c.empty();
    if (!blank) break;
    header.cells.clear();
  }
  if (header.cells.empty()) bad(where, "has no header row; expected a CSV whose first row names the columns");
  std::unordered_map<std::string, size_t> column;
  for (size_t j = 0; j < header.cells.size(); ++j) {
    if (!column.emplace(header.cells[j], j).second) {
      bad(where, "header (line " + std::to_string(header.line) + ") repeats the column " + shown(header.cells[j]));
    }
  }
  std::vector<size_t> source;  // per feature, its column in the file
  std::string missing;
  size_t width = 0;
  for (const auto& f : features) {
    const auto it = column.find(f.name);
    if (it == column.end()) missing += (missing.empty() ? "" : ", ") + shown(f.name);
    source.push_back(it == column.end() ? 0 : it->second);
    width += f.width();
  }
  if (!missing.empty()) {
    std::string names;
    for (const auto& f : features) names += (names.empty() ? "" : ", ") + shown(f.name);
    bad(where, "has no column " + missing + "; the model's features are " + names + " (matched by header name)");
  }
  std::vector<std::unordered_map<std::string, size_t>> vocab(features.size());
  for (size_t i = 0; i < features.size(); ++i) {
    for (size_t v = 0; v < features[i].vocabulary.size(); ++v) vocab[i].emplace(features[i].vocabulary[v], v);
  }

  std::vector<float> values;
  size_t rows = 0;
  Record r;
  while (records.next(r)) {
    bool blank = true;
    for (const auto& c : r.cells) blank = blank && c.empty();
    if (blank) continue;  // as training reads the file
    if (r.cells.size() != header.cells.size()) {
      bad(where, "line " + std::to_string(r.line) + " has " + std::to_string(r.cells.size()) +
                     " cells, the header has " + std::to_string(header.cells.size()));
    }
    if (++rows > limits::kCsvRows) bad(where, "has more than the limit of " + std::to_string(limits::kCsvRows) + " rows");
    // Rows times the encoded width (one-hot columns included) is what will be
    // allocated: bounded before it grows.
    if (static_cast<uint64_t>(rows) * width > limits::kCsvValues) {
      bad(where, "encodes to more than the limit of " + std::to_string(limits::kCsvValues) + " values (" +
                     std::to_string(rows) + " rows so far x " + std::to_string(width) +
                     " values per row, one-hot columns included); split the file");
    }
    for (size_t i = 0; i < features.size(); ++i) {
      const auto& f = features[i];
      const std::string& cell = r.cells[source[i]];
      const std::string at = "line " + std::to_string(r.line) + ", column " + shown(f.name);
      if (f.type == "categorical") {
        if (cell.empty()) bad(where, at + " is empty; expected one of the feature's categories");
        const size_t start = values.size();
        values.resize(start + f.vocabulary.size(), 0.0f);  // outside the vocabulary: all zeros
        const auto hit = vocab[i].find(cell);
        if (hit != vocab[i].end()) values[start + hit->second] = 1.0f;
      } else {
        values.push_back(number(cell, where + ", " + at));
      }
    }
  }
  if (rows == 0) bad(where, "has a header but no data rows");
  // [rows, width]: the features' floats side by side, in the manifest's order.
  try {
    return at::from_blob(values.data(), {static_cast<int64_t>(rows), static_cast<int64_t>(width)}, at::kFloat).clone();
  } catch (const std::bad_alloc&) {
    bad(where, "its " + std::to_string(rows) + " rows could not be allocated (out of memory)");
  }
}

}  // namespace

at::Tensor read_csv_rows(const std::string& bytes, const std::vector<FeatureSpec>& features, const std::string& where) {
  try {
    return read_rows(bytes, features, where);
  } catch (const std::bad_alloc&) {
    bad(where, "could not be read: out of memory");
  }
}

}  // namespace torchport::detail
