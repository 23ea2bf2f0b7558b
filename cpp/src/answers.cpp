#include <torchport/answers.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <sstream>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace torchport {
namespace {

using json = nlohmann::ordered_json;

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorKind::BadOption, what); }

// What one output holds for one sample: its values, and for a classifier its labels.
struct Column {
  std::string name;
  at::Tensor values;  // [B, N] float64 or int64, N = the sample's values flattened
  bool classifier = false;  // [B, K] scores over the manifest's K labels
  bool indices = false;     // [B] class indices into the labels
};

std::vector<Column> columns(const std::vector<at::Tensor>& outputs, const Manifest& manifest) {
  std::vector<Column> cols;
  int64_t batch = -1;
  const auto& labels = manifest.labels;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string name = i < manifest.outputs.size() ? manifest.outputs[i].name : "output_" + std::to_string(i);
    const at::Tensor& t = outputs[i];
    if (t.dim() == 0) bad("output '" + name + "': a readable answer needs a batch dimension, got a scalar");
    if (batch >= 0 && t.size(0) != batch) {
      bad("output '" + name + "': batch " + std::to_string(t.size(0)) + " expected " + std::to_string(batch) +
          " like the first output (a readable answer is one record per sample)");
    }
    batch = t.size(0);
    Column c;
    c.name = name;
    const bool integral = !c10::isFloatingType(t.scalar_type()) && !c10::isComplexType(t.scalar_type());
    if (c10::isComplexType(t.scalar_type())) bad("output '" + name + "': complex values have no readable answer");
    c.values = t.detach().to(at::kCPU).reshape({batch, -1}).to(integral ? at::kLong : at::kDouble).contiguous();
    // Only the first output the labels fit is labelled: one "label" per record.
    const bool free = std::none_of(cols.begin(), cols.end(), [](const Column& o) { return o.classifier || o.indices; });
    c.classifier = free && !labels.empty() && !integral && t.dim() == 2 &&
                   t.size(1) == static_cast<int64_t>(labels.size());
    c.indices = free && !labels.empty() && integral && t.dim() == 1;
    cols.push_back(std::move(c));
  }
  return cols;
}

// The top_k (label, score) pairs of one sample's scores, highest first, ties in label order.
std::vector<std::pair<std::string, double>> top(const double* scores, const std::vector<std::string>& labels, int k) {
  std::vector<size_t> order(labels.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  std::vector<std::pair<std::string, double>> out;
  for (size_t i = 0; i < order.size() && i < static_cast<size_t>(k); ++i) out.emplace_back(labels[order[i]], scores[order[i]]);
  return out;
}

std::string label_of(int64_t index, const std::vector<std::string>& labels) {
  return index >= 0 && index < static_cast<int64_t>(labels.size()) ? labels[index] : "";
}

std::string csv_cell(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char ch : text) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return quoted + "\"";
}

std::string number(double v) {
  std::ostringstream out;
  out.precision(9);
  out << v;
  return out.str();
}

}  // namespace

std::vector<std::string> answer_formats() { return {"json", "csv"}; }

std::string format_answers(const std::vector<at::Tensor>& outputs, const Manifest& manifest,
                           const std::string& format, int top_k) {
  if (format != "json" && format != "csv") bad("format: expected json or csv, got '" + format + "'");
  if (top_k < 1) bad("top_k: expected >= 1, got " + std::to_string(top_k));
  const auto cols = columns(outputs, manifest);
  const int64_t batch = cols.empty() ? 0 : cols.front().values.size(0);
  const auto& labels = manifest.labels;
  const int k = std::min<int>(top_k, static_cast<int>(labels.size()));

  if (format == "json") {
    json rows = json::array();
    for (int64_t b = 0; b < batch; ++b) {
      json row = json::object();
      for (const auto& c : cols) {
        const int64_t n = c.values.size(1);
        json values = json::array();
        for (int64_t j = 0; j < n; ++j) {
          if (c.values.scalar_type() == at::kLong) {
            values.push_back(c.values.data_ptr<int64_t>()[b * n + j]);
          } else {
            const double v = c.values.data_ptr<double>()[b * n + j];
            values.push_back(std::isfinite(v) ? json(v) : json(number(v)));  // JSON has no NaN: "nan" as text
          }
        }
        row[c.name] = n == 1 && c.indices ? values[0] : values;
        if (c.classifier) {
          json best = json::array();
          for (const auto& [label, score] : top(c.values.data_ptr<double>() + b * n, labels, k)) {
            best.push_back({{"label", label}, {"score", score}});
          }
          row["label"] = best.empty() ? json("") : best[0]["label"];
          row["top"] = best;
        } else if (c.indices) {
          row["label"] = label_of(c.values.data_ptr<int64_t>()[b], labels);
        }
      }
      rows.push_back(row);
    }
    return json({{"model", manifest.name}, {"answers", rows}}).dump(2) + "\n";
  }

  // CSV: one row per sample; an output of N values gives N columns name_0..name_{N-1}
  // (just the name when N is 1), a classifier adds label, then top{i}_label and top{i}_score.
  std::ostringstream out;
  std::vector<std::string> header;
  for (const auto& c : cols) {
    const int64_t n = c.values.size(1);
    for (int64_t j = 0; j < n; ++j) header.push_back(n == 1 ? c.name : c.name + "_" + std::to_string(j));
    if (c.classifier || c.indices) header.push_back("label");
    if (c.classifier) {
      for (int i = 1; i <= k; ++i) {
        header.push_back("top" + std::to_string(i) + "_label");
        header.push_back("top" + std::to_string(i) + "_score");
      }
    }
  }
  for (size_t i = 0; i < header.size(); ++i) out << (i ? "," : "") << csv_cell(header[i]);
  out << "\n";
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<std::string> cells;
    for (const auto& c : cols) {
      const int64_t n = c.values.size(1);
      for (int64_t j = 0; j < n; ++j) {
        cells.push_back(c.values.scalar_type() == at::kLong ? std::to_string(c.values.data_ptr<int64_t>()[b * n + j])
                                                            : number(c.values.data_ptr<double>()[b * n + j]));
      }
      if (c.classifier) {
        const auto best = top(c.values.data_ptr<double>() + b * n, labels, k);
        cells.push_back(best.empty() ? "" : csv_cell(best[0].first));
        for (const auto& [label, score] : best) {
          cells.push_back(csv_cell(label));
          cells.push_back(number(score));
        }
      } else if (c.indices) {
        cells.push_back(csv_cell(label_of(c.values.data_ptr<int64_t>()[b], labels)));
      }
    }
    for (size_t i = 0; i < cells.size(); ++i) out << (i ? "," : "") << cells[i];
    out << "\n";
  }
  return out.str();
}

}  // namespace torchport
