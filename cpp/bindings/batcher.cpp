#include "batcher.h"

#include <chrono>
#include <future>
#include <string>
#include <thread>

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

bool python_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

// Waits without the GIL. While Python shuts down, a thread that takes the GIL
// back is ended with pthread_exit: a forced unwind, which aborts the process
// when it meets a noexcept frame such as ~gil_scoped_release. So the GIL is
// released and retaken by hand here, in a frame the unwind may cross, and a
// thread whose result comes after shutdown began stays parked instead (the
// process is ending; daemon threads never run again).
std::vector<at::Tensor> wait_for(const std::shared_future<std::vector<at::Tensor>>& future) {
  std::vector<at::Tensor> outputs;
  std::exception_ptr error;
  PyThreadState* state = PyEval_SaveThread();
  try {
    outputs = future.get();
  } catch (...) {
    error = std::current_exception();
  }
  while (python_finalizing()) std::this_thread::sleep_for(std::chrono::seconds(1));
  PyEval_RestoreThread(state);
  if (error) std::rethrow_exception(error);
  return outputs;
}

// An option as a C++ int within [lo, hi]; any other Python value (a huge int,
// a float, a bool) is a BadOption naming it, not a TypeError.
int int_option(const char* name, const py::handle& value, long long lo, long long hi) {
  if (!PyLong_Check(value.ptr()) || PyBool_Check(value.ptr())) {
    throw Error(ErrorKind::BadOption, std::string(name) + ": expected an integer " + std::to_string(lo) + " to " +
                                          std::to_string(hi) + ", got " + py::str(py::type::of(value)).cast<std::string>());
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
  if (overflow != 0 || v < lo || v > hi) {
    throw Error(ErrorKind::BadOption, std::string(name) + ": expected " + std::to_string(lo) + " to " +
                                          std::to_string(hi) + ", got " + py::str(value).cast<std::string>());
  }
  return static_cast<int>(v);
}

double float_option(const char* name, const py::handle& value, double lo, double hi) {
  if (!(PyLong_Check(value.ptr()) || PyFloat_Check(value.ptr())) || PyBool_Check(value.ptr())) {
    throw Error(ErrorKind::BadOption, std::string(name) + ": expected a number, got " +
                                          py::str(py::type::of(value)).cast<std::string>());
  }
  const double v = PyFloat_AsDouble(value.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw Error(ErrorKind::BadOption, std::string(name) + ": expected " + std::to_string(static_cast<long long>(lo)) +
                                          " to " + std::to_string(static_cast<long long>(hi)) + ", got " +
                                          py::str(value).cast<std::string>());
  }
  return v;  // the range (and NaN) is the library's check
}

}  // namespace

void register_batcher(py::module_& m) {
  py::class_<BatchFuture>(m, "BatchFuture", "The pending result of Batcher.submit.")
      .def(
          "result",
          [](const BatchFuture& self) {
            return to_list(wait_for(self.future));
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
      .def(py::init([](const Model& model, const py::object& max_batch, const py::object& max_delay_ms,
                       const py::object& max_queue) {
             BatcherOptions options;
             options.max_batch = int_option("max_batch", max_batch, 1, 4096);
             options.max_delay_ms = float_option("max_delay_ms", max_delay_ms, 0, 10'000);
             options.max_queue = int_option("max_queue", max_queue, 1, 1'000'000);
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
            return to_list(wait_for(self.batcher->submit(tensors_from(self.model, inputs)).share()));
          },
          py::arg("inputs"), "submit(inputs).result().")
      .def_property_readonly("batches", [](const PyBatcher& self) { return self.batcher->batches(); },
                             "Batched calls made so far.")
      .def_property_readonly("requests", [](const PyBatcher& self) { return self.batcher->requests(); },
                             "Requests those calls carried.");
}

}  // namespace torchport::bindings
