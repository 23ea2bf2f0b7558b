// selfcheck and benchmark: the runtime's own evidence that it works and how fast.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <torchport/tools.h>

#include "detail.h"
#include "pte.h"
#include "reader.h"

namespace torchport {
namespace {

using nlohmann::json;

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ca = a.cpu().contiguous(), cb = b.cpu().contiguous();
  return ca.nbytes() == cb.nbytes() && std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

Comparison compare_one(const std::string& name, const at::Tensor& expected, const at::Tensor& got,
                       double atol, double rtol) {
  Comparison row;
  row.output = name;
  row.expected_shape = expected.sizes().vec();
  row.got_shape = got.sizes().vec();
  row.expected_dtype = expected.scalar_type();
  row.got_dtype = got.scalar_type();
  if (row.expected_shape != row.got_shape || row.expected_dtype != row.got_dtype) {
    row.max_abs_diff = row.max_rel_diff = std::numeric_limits<double>::infinity();
    return row;
  }
  row.bit_exact = same_bytes(expected, got);
  if (expected.numel() == 0 || row.bit_exact) {
    row.ok = true;
    return row;
  }
  const at::Tensor e = expected.cpu().to(at::kDouble), g = got.cpu().to(at::kDouble);
  // NaN where both hold NaN counts as equal (as in `ok`), not as a NaN difference.
  const at::Tensor both_nan = at::isnan(g) & at::isnan(e);
  const at::Tensor raw = (g - e).abs();
  const at::Tensor diff = at::where(both_nan, at::zeros_like(raw), raw);
  row.max_abs_diff = diff.max().item<double>();
  const at::Tensor rel = diff / e.abs().clamp_min(std::numeric_limits<double>::min());
  row.max_rel_diff = at::where(both_nan, at::zeros_like(rel), rel).max().item<double>();
  row.ok = at::allclose(g, e, rtol, atol, /*equal_nan=*/true);
  return row;
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  const double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - static_cast<double>(lo));
}

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

std::vector<Comparison> compare_outputs(const std::vector<std::string>& names,
                                        const std::vector<at::Tensor>& expected,
                                        const std::vector<at::Tensor>& got, double atol,
                                        double rtol) {
  for (const auto& [name, value] : {std::pair{"atol", atol}, std::pair{"rtol", rtol}}) {
    if (!std::isfinite(value) || value < 0) {
      throw Error(ErrorKind::BadOption,
                  std::string(name) + ": expected a finite number >= 0, got " + std::to_string(value));
    }
  }
  if (expected.size() != got.size()) {
    throw Error(ErrorKind::Runtime, "expected " + std::to_string(expected.size()) +
                                        " outputs, got " + std::to_string(got.size()));
  }
  std::vector<Comparison> rows;
  for (size_t i = 0; i < expected.size(); ++i) {
    const std::string name = i < names.size() ? names[i] : "output_" + std::to_string(i);
    rows.push_back(compare_one(name, expected[i], got[i], atol, rtol));
  }
  return rows;
}

namespace {

void flatten_into(const c10::IValue& v, const std::string& what, std::vector<at::Tensor>& out) {
  if (v.isTensor()) {
    out.push_back(v.toTensor());
  } else if (v.isNone()) {
    return;
  } else if (v.isTuple()) {
    for (const auto& item : v.toTupleRef().elements()) flatten_into(item, what, out);
  } else if (v.isList()) {
    for (const auto& item : v.toListRef()) flatten_into(item, what, out);
  } else if (v.isGenericDict()) {
    for (const auto& item : v.toGenericDict()) flatten_into(item.value(), what, out);
  } else {
    throw Error(ErrorKind::Runtime, what + " holds a " + v.tagKind() +
                                        "; expected tensors in tuples, lists or dicts");
  }
}

}  // namespace

std::vector<at::Tensor> flatten_tensors(const c10::IValue& value, const std::string& what) {
  std::vector<at::Tensor> out;
  flatten_into(value, what, out);
  return out;
}

bool CheckReport::ok() const {
  return !rows.empty() && std::all_of(rows.begin(), rows.end(), [](const Comparison& r) { return r.ok; });
}

std::string CheckReport::to_json(int indent) const {
  json out = {{"ok", ok()}, {"outputs", json::array()}};
  for (const auto& r : rows) {
    out["outputs"].push_back({{"name", r.output},
                              {"expected_shape", r.expected_shape},
                              {"shape", r.got_shape},
                              {"expected_dtype", dtype_name(r.expected_dtype)},
                              {"dtype", dtype_name(r.got_dtype)},
                              {"max_abs_diff", finite_or_null(r.max_abs_diff)},
                              {"max_rel_diff", finite_or_null(r.max_rel_diff)},
                              {"bit_exact", r.bit_exact},
                              {"ok", r.ok}});
  }
  return out.dump(indent);
}

ArtifactInfo inspect(const std::string& path, bool checksum) {
  const auto bytes = detail::read_regular_file(path, "artifact", ErrorKind::BadArtifact);
  detail::ArchiveFiles files =
      detail::read_archive(path, bytes, checksum ? detail::Checksum::Compute : detail::Checksum::Skip);
  ArtifactInfo info;
  info.format = files.format;
  if (files.manifest) {
    // What loading would refuse, as loading words it; the manifest is still shown.
    try {
      if (checksum) detail::verify_checksum(files, path);
      if (files.format == "executorch") {
        detail::check_pte_program(detail::split_pte(*bytes, "artifact '" + path + "'").program,
                                  "artifact '" + path + "'");
      }
    } catch (const Error& e) {
      info.problem = e.what();
    }
    info.manifest = std::move(*files.manifest);
    info.checksum = files.checksum;
    info.checksum_ok = !info.manifest.checksum.empty() && info.checksum == info.manifest.checksum;
    return info;
  }
  // No manifest: the contract as far as forward() tells it, as Model::load derives it.
  Options options;
  options.verify_checksum = false;
  const Model model = Model::load(path, options);
  info.manifest = model.manifest();
  return info;
}

Golden read_golden_bytes(const std::string& bytes, const std::string& where) {
  return detail::parse_golden(bytes, where);
}

Golden read_golden(const std::string& path) {
  const auto bytes = detail::read_regular_file(path, "artifact", ErrorKind::BadArtifact);
  const detail::ArchiveFiles files = detail::read_archive(path, bytes, detail::Checksum::Skip);
  if (files.golden_bytes.empty()) {
    throw Error(ErrorKind::BadArtifact, "artifact '" + path + "' holds no golden examples (torchport/golden.pt)");
  }
  return detail::parse_golden(files.golden_bytes, "'" + path + "' torchport/golden.pt");
}

std::string profile_checksum(const std::string& path) {
  auto bytes = detail::read_regular_file(path, "artifact", ErrorKind::BadArtifact);
  std::string format;
  return detail::profile_checksum(path, bytes, "", &format);
}

std::string payload_checksum(const std::string& archive_bytes) {
  return detail::payload_checksum(archive_bytes, "archive");
}

CheckReport selfcheck(const Model& model, std::optional<double> atol, std::optional<double> rtol) {
  const Golden golden = model.golden();
  std::vector<std::string> names;
  try {  // a list per batch element names each element's outputs
    names = model.manifest().output_names_for(golden.outputs.size());
  } catch (const Error&) {  // golden outputs that do not fit: compare_outputs says so
    for (const auto& spec : model.manifest().outputs) names.push_back(spec.name);
  }
  CheckReport report;
  // The format's stated tolerance is the default only: an AOTInductor package
  // is not expected to reproduce eager's last bits, a TorchScript archive is,
  // and a caller that asks for stricter figures gets them.
  const Manifest& m = model.manifest();
  const bool given = atol.has_value() || rtol.has_value();
  report.rows = compare_outputs(names, golden.outputs, model.run(model.example_inputs()),
                                given ? atol.value_or(0.0) : m.atol, given ? rtol.value_or(0.0) : m.rtol);
  return report;
}

std::string BenchResult::to_json(int indent) const {
  json out = {{"iters", iters},       {"warmup", warmup},       {"threads", threads},
              {"first_call_ms", first_call_ms}, {"mean_ms", mean_ms}, {"min_ms", min_ms},
              {"p50_ms", p50_ms},     {"p90_ms", p90_ms},       {"p99_ms", p99_ms},
              {"max_ms", max_ms}};
  return out.dump(indent);
}

BenchResult benchmark(const Model& model, const std::vector<at::Tensor>& inputs, int iters,
                      int warmup) {
  constexpr int kMaxIters = 10'000'000;
  if (iters < 1 || iters > kMaxIters) {
    throw Error(ErrorKind::BadOption,
                "iters: expected 1 to " + std::to_string(kMaxIters) + ", got " + std::to_string(iters));
  }
  if (warmup < 0 || warmup > kMaxIters) {
    throw Error(ErrorKind::BadOption,
                "warmup: expected 0 to " + std::to_string(kMaxIters) + ", got " + std::to_string(warmup));
  }
  using clock = std::chrono::steady_clock;
  auto ms_since = [](clock::time_point start) {
    return std::chrono::duration<double, std::milli>(clock::now() - start).count();
  };
  BenchResult result;
  result.iters = iters;
  result.warmup = warmup;
  result.threads = at::get_num_threads();
  auto start = clock::now();
  model.run(inputs);
  result.first_call_ms = ms_since(start);
  for (int i = 0; i < warmup; ++i) model.run(inputs);
  std::vector<double> times;
  times.reserve(iters);
  for (int i = 0; i < iters; ++i) {
    start = clock::now();
    model.run(inputs);
    times.push_back(ms_since(start));
  }
  std::sort(times.begin(), times.end());
  result.mean_ms = std::accumulate(times.begin(), times.end(), 0.0) / static_cast<double>(times.size());
  result.min_ms = times.front();
  result.max_ms = times.back();
  result.p50_ms = percentile(times, 50);
  result.p90_ms = percentile(times, 90);
  result.p99_ms = percentile(times, 99);
  return result;
}

}  // namespace torchport
