// torchport._native: the C++ runtime for Python, and nothing else. The Python
// package (torchport.native) wraps it; behaviour lives in the library.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <torchport/io.h>
#include <torchport/tools.h>
#include <torchport/torchport.h>

#include "dlpack.h"
#include "localize.h"

namespace py = pybind11;

namespace torchport::bindings {
namespace {

// Tensors in input order; errors name the input the model calls it.
std::vector<at::Tensor> tensors_from(const Model& model, const py::sequence& items) {
  const auto& specs = model.manifest().inputs;
  std::vector<at::Tensor> out;
  out.reserve(py::len(items));
  for (size_t i = 0; i < static_cast<size_t>(py::len(items)); ++i) {
    const std::string where =
        i < specs.size() ? "input '" + specs[i].name + "'" : "input " + std::to_string(i);
    out.push_back(from_python(items[i], where));
  }
  return out;
}

py::list tensors_to(const std::vector<at::Tensor>& tensors) {
  py::list out;
  for (const auto& t : tensors) out.append(to_python(t));
  return out;
}

// The model runs without the GIL, so other Python threads go on meanwhile.
template <typename Inputs>
py::list run_released(const Model& model, const Inputs& inputs) {
  std::vector<at::Tensor> outputs;
  {
    py::gil_scoped_release release;
    if constexpr (std::is_same_v<Inputs, std::vector<at::Tensor>>) {
      outputs = model.run(inputs);
    } else {
      outputs = model.run_named(inputs);
    }
  }
  return tensors_to(outputs);
}

void register_errors(py::module_& m) {
  // The exception classes are plain Python (torchport.errors), so they exist
  // even where this extension is missing.
  py::module_ errors = py::module_::import("torchport.errors");
  static auto* classes = new std::map<ErrorKind, py::object>{
      {ErrorKind::NotFound, errors.attr("ArtifactNotFoundError")},
      {ErrorKind::BadArtifact, errors.attr("BadArtifactError")},
      {ErrorKind::BadInput, errors.attr("BadInputError")},
      {ErrorKind::BadOption, errors.attr("BadOptionError")},
      {ErrorKind::Runtime, errors.attr("ModelRuntimeError")},
  };
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(classes->at(e.kind()).ptr(), e.what());
    }
  });
}

void register_model(py::module_& m) {
  py::class_<Model>(m, "Model", R"doc(
A loaded artifact, run by the C++ runtime.

    >>> m = Model("model.pt", threads=2)
    >>> outputs = m.run([torch.rand(4, 1, 8, 8)])
)doc")
      .def(py::init([](const std::string& path, const std::string& device, int threads,
                       int warmup_runs, bool check_nan, bool verify_checksum,
                       const std::vector<std::string>& libraries) {
             Options options;
             options.device = device;
             options.threads = threads;
             options.warmup_runs = warmup_runs;
             options.check_nan = check_nan;
             options.verify_checksum = verify_checksum;
             options.libraries = libraries;
             py::gil_scoped_release release;
             return Model::load(path, options);
           }),
           py::arg("path"), py::kw_only(), py::arg("device") = "cpu", py::arg("threads") = 0,
           py::arg("warmup_runs") = 0, py::arg("check_nan") = false, py::arg("verify_checksum") = true,
           py::arg("libraries") = std::vector<std::string>{},
           "Loads an artifact; raises a torchport.errors.TorchportError subclass.")
      .def_property_readonly("path", &Model::path, "The artifact's path.")
      .def_property_readonly("format", &Model::format, "The backend that loaded it: 'torchscript'.")
      .def_property_readonly("warmup_ms", &Model::warmup_ms, "Milliseconds spent warming up at load.")
      .def_property_readonly(
          "manifest_json", [](const Model& self) { return self.manifest().to_json(); },
          "The manifest (or the contract derived from forward()) as JSON text.")
      .def(
          "run",
          [](const Model& self, const py::sequence& inputs) {
            return run_released(self, tensors_from(self, inputs));
          },
          py::arg("inputs"),
          "Runs the model on tensors in manifest order; returns the outputs as a list.\n\n"
          "    >>> m.run([torch.rand(4, 1, 8, 8)])")
      .def(
          "run_named",
          [](const Model& self, const py::dict& inputs) {
            std::map<std::string, at::Tensor> named;
            for (const auto& [key, value] : inputs) {
              const std::string name = py::str(key);
              named[name] = from_python(value, "input '" + name + "'");
            }
            return run_released(self, named);
          },
          py::arg("inputs"),
          "Runs the model on tensors given by input name.\n\n"
          "    >>> m.run_named({'image': torch.rand(4, 1, 8, 8)})")
      .def(
          "golden",
          [](const Model& self) {
            const Golden g = self.golden();
            return py::make_tuple(tensors_to(g.inputs), tensors_to(g.outputs));
          },
          "The golden (inputs, outputs) stored at export.")
      .def(
          "example_inputs", [](const Model& self) { return tensors_to(self.example_inputs()); },
          "Golden inputs, else synthetic ones from the manifest.")
      .def(
          "selfcheck",
          [](const Model& self, double atol, double rtol) {
            py::gil_scoped_release release;
            return selfcheck(self, atol, rtol).to_json();
          },
          py::kw_only(), py::arg("atol") = 0.0, py::arg("rtol") = 0.0,
          "Runs the golden inputs against the golden outputs; returns the report as JSON text.")
      .def(
          "benchmark",
          [](const Model& self, const py::object& inputs, int iters, int warmup) {
            const auto tensors =
                inputs.is_none() ? self.example_inputs() : tensors_from(self, inputs.cast<py::sequence>());
            py::gil_scoped_release release;
            return benchmark(self, tensors, iters, warmup).to_json();
          },
          py::kw_only(), py::arg("inputs") = py::none(), py::arg("iters") = 100,
          py::arg("warmup") = 10,
          "Times repeated runs; returns first-call latency and percentiles (ms) as JSON text.");
}

void register_io(py::module_& m) {
  m.def(
      "read_tensor_file",
      [](const std::string& path) -> py::object {
        TensorBundle bundle;
        {
          py::gil_scoped_release release;
          bundle = read_tensor_file(path);
        }
        if (!bundle.by_name) return tensors_to(bundle.positional);
        py::dict named;
        for (const auto& [name, tensor] : bundle.named) named[py::str(name)] = to_python(tensor);
        return named;
      },
      py::arg("path"),
      "Reads a torch.save file of tensors with the runtime's reader (no code is executed): a list "
      "of tensors, or a dict by input name.\n\n    >>> read_tensor_file('inputs.pt')");
}

void check_torch_version() {
  const std::string running = py::str(py::module_::import("torch").attr("__version__"));
  if (running != TORCHPORT_TORCH_VERSION) {
    throw py::import_error("torchport._native was built against torch " +
                           std::string(TORCHPORT_TORCH_VERSION) + " but torch " + running +
                           " is installed; reinstall torchport with the torch you run "
                           "(pip install --no-build-isolation .)");
  }
}

}  // namespace
}  // namespace torchport::bindings

PYBIND11_MODULE(_native, m) {
  using namespace torchport::bindings;
  check_torch_version();
  m.doc() = "The torchport C++ runtime (private; use the torchport package).";
  m.attr("__version__") = torchport::version();
  m.attr("__torch_version__") = torchport::torch_version();
  register_errors(m);
  register_model(m);
  register_io(m);
  register_localize(m);
}
