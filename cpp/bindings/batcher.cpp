#include "batcher.h"

#include <chrono>
#include <future>

#include <pybind11/stl.h>

#include <torchport/batcher.h>
#include <torchport/torchport.h>

#include "dlpack.h"

namespace py = pybind11;

namespace torchport::bindings {
namespace {

py::list to_list(const std::vector<at::Tensor>& tensors) {
  py::list out;
  for (const auto& t : tensors) out.append(to_python(t));
  return out;
}

// The batcher keeps the model it was given; Python keeps the Batcher alive
// while a future from it is alive (py::keep_alive on submit).
struct PyBatcher {
  Model model;
  std::unique_ptr<Batcher> batcher;
  PyBatcher(const Model& m, BatcherOptions o) : model(m), batcher(std::make_unique<Batcher>(m, o)) {}
  // The worker frees request tensors that came from Python, which takes the
  // GIL: wait for it to stop without holding the GIL.
  ~PyBatcher() {
    py::gil_scoped_release release;
    batcher.reset();
  }
};

struct BatchFuture {
  std::shared_future<std::vector<at::Tensor>> future;
};

}  // namespace

void register_batcher(py::module_& m) {
  py::class_<BatchFuture>(m, "BatchFuture", "The pending result of Batcher.submit.")
      .def(
          "result",
          [](const BatchFuture& self) {
            std::vector<at::Tensor> outputs;
            {
              py::gil_scoped_release release;
              outputs = self.future.get();
            }
            return to_list(outputs);
          },
          "Waits (without the GIL) and returns the outputs as a list; raises the request's error.")
      .def(
          "done",
          [](const BatchFuture& self) {
            return self.future.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
          },
          "True once the result (or error) is there.");
  py::class_<PyBatcher>(m, "Batcher", R"doc(
Groups concurrent single requests into batched calls of one Model (the model's
inputs and outputs must share a dynamic first dimension).

    >>> b = Batcher(model, max_batch=16, max_delay_ms=2.0)
    >>> (logits,) = b.run([image])   # image: [1, C, H, W]; call from many threads
)doc")
      .def(py::init([](const Model& model, int max_batch, double max_delay_ms, int max_queue) {
             BatcherOptions options;
             options.max_batch = max_batch;
             options.max_delay_ms = max_delay_ms;
             options.max_queue = max_queue;
             return std::make_unique<PyBatcher>(model, options);
           }),
           py::arg("model"), py::kw_only(), py::arg("max_batch") = BatcherOptions{}.max_batch,
           py::arg("max_delay_ms") = BatcherOptions{}.max_delay_ms, py::arg("max_queue") = BatcherOptions{}.max_queue,
           "Raises BadOptionError for a model without a shared dynamic batch dimension or options out of range.")
      .def(
          "submit",
          [](PyBatcher& self, const py::sequence& inputs) {
            return BatchFuture{self.batcher->submit(tensors_from(self.model, inputs)).share()};
          },
          py::arg("inputs"), py::keep_alive<0, 1>(),
          "Queues one request (tensors in manifest order); a full queue raises ModelRuntimeError at once.")
      .def(
          "run",
          [](PyBatcher& self, const py::sequence& inputs) {
            auto future = self.batcher->submit(tensors_from(self.model, inputs));
            std::vector<at::Tensor> outputs;
            {
              py::gil_scoped_release release;
              outputs = future.get();
            }
            return to_list(outputs);
          },
          py::arg("inputs"), "submit(inputs).result().")
      .def_property_readonly("batches", [](const PyBatcher& self) { return self.batcher->batches(); },
                             "Batched calls made so far.")
      .def_property_readonly("requests", [](const PyBatcher& self) { return self.batcher->requests(); },
                             "Requests those calls carried.");
}

}  // namespace torchport::bindings
