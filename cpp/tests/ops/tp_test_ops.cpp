// A custom operator library for the tests, as a user's would be: TORCH_LIBRARY
// ops with CPU kernels, built by CMake, loaded at run time (Options::libraries,
// torchport-run --load-library, NativeModel(libraries=...), torch.ops.load_library).
//
//   tp_test::softsign(x)       = x / (1 + |x|), bit for bit what the Python
//                                reference x / (1 + x.abs()) computes
//   tp_test::softsign_drift(x) = x / (1 + 1e-6 + |x|), the same op "built
//                                differently": off from the reference by ~1e-6
//                                relative, the kind of drift the localiser finds

#include <cmath>

#include <ATen/ATen.h>
#include <torch/library.h>

namespace {

template <typename Fn>
at::Tensor elementwise(const at::Tensor& x, const char* op, Fn fn) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, op, ": expected a float32 tensor, got ", x.scalar_type());
  const at::Tensor in = x.contiguous();
  at::Tensor out = at::empty_like(in);
  const float* src = in.const_data_ptr<float>();
  float* dst = out.mutable_data_ptr<float>();
  for (int64_t i = 0; i < in.numel(); ++i) dst[i] = fn(src[i]);
  return out;
}

at::Tensor softsign(const at::Tensor& x) {
  return elementwise(x, "tp_test::softsign", [](float v) { return v / (1.0f + std::fabs(v)); });
}

at::Tensor softsign_drift(const at::Tensor& x) {
  return elementwise(x, "tp_test::softsign_drift",
                     [](float v) { return v / ((1.0f + 1e-6f) + std::fabs(v)); });
}

at::Tensor keep_above(const at::Tensor& scores, double threshold) {
  TORCH_CHECK(scores.dim() == 1, "tp_test::keep_above: expected 1-D scores, got ", scores.dim(), " dims");
  const at::Tensor kept = at::nonzero(scores > threshold).flatten();  // [N], ascending
  // Stable, so that equal scores keep their order in every runtime.
  const at::Tensor order = std::get<1>(scores.index_select(0, kept).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  return kept.index_select(0, order);
}

}  // namespace

TORCH_LIBRARY(tp_test, m) {
  m.def("softsign(Tensor x) -> Tensor");
  m.def("softsign_drift(Tensor x) -> Tensor");
  m.def("keep_above(Tensor scores, float threshold) -> Tensor");
}

TORCH_LIBRARY_IMPL(tp_test, CPU, m) {
  m.impl("softsign", softsign);
  m.impl("softsign_drift", softsign_drift);
  m.impl("keep_above", keep_above);
}
