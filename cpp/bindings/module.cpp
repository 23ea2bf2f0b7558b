// torchport._native: the C++ runtime for Python, and nothing else. The Python
// package (torchport.native) wraps it; behaviour lives in the library.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <map>

#include <torchport/answers.h>
#include <torchport/io.h>
#include <torchport/tools.h>
#include <torchport/torchport.h>

#include "batcher.h"
#include "dlpack.h"
#include "localize.h"
#include "outputs.h"
#include "profile.h"

namespace py = pybind11;

namespace torchport::bindings {
namespace {

// Tensors given by input name; errors name the input.
std::map<std::string, at::Tensor> named_from(const py::dict& inputs) {
  std::map<std::string, at::Tensor> named;
  for (const auto& [key, value] : inputs) {
    const std::string name = py::str(key);
    named[name] = value.is_none() ? at::Tensor() : from_python(value, "input '" + name + "'");
  }
  return named;
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
  // even where this extension is missing; the exit-code table is here.
  py::module_ errors = py::module_::import("torchport.errors");
  static auto* classes = new std::map<ErrorKind, py::object>{
      {ErrorKind::NotFound, errors.attr("ArtifactNotFoundError")},
      {ErrorKind::BadArtifact, errors.attr("BadArtifactError")},
      {ErrorKind::BadInput, errors.attr("BadInputError")},
      {ErrorKind::BadOption, errors.attr("BadOptionError")},
      {ErrorKind::Runtime, errors.attr("ModelRuntimeError")},
      {ErrorKind::Export, errors.attr("ExportError")},
      {ErrorKind::Data, errors.attr("DataError")},
      {ErrorKind::Checkpoint, errors.attr("CheckpointError")},
      {ErrorKind::Output, errors.attr("OutputError")},
      {ErrorKind::Unavailable, errors.attr("NativeUnavailableError")},
  };
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      // A message may quote bytes from a hostile file: never let them break decoding.
      const std::string text = e.what();
      py::object message = py::reinterpret_steal<py::object>(
          PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace"));
      PyErr_SetObject(classes->at(e.kind()).ptr(), message.ptr());
    }
  });
  py::list table;
  for (const ErrorKind kind : error_kinds()) table.append(py::make_tuple(to_string(kind), exit_code(kind)));
  m.attr("EXIT_CODES") = table;
  m.attr("EXIT_MISMATCH") = kExitMismatch;
}

// A Python int option as a C++ int: anything else, or a value outside int's
// range, is a BadOption naming the option (not pybind11's TypeError).
int int_option(const py::handle& value, const char* name) {
  if (!PyLong_Check(value.ptr()) || PyBool_Check(value.ptr())) {
    throw Error(ErrorKind::BadOption, std::string(name) + ": expected an integer, got " +
                                          py::str(py::type::of(value).attr("__name__")).cast<std::string>());
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
  if (overflow != 0 || v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    throw Error(ErrorKind::BadOption, std::string(name) + ": " + py::str(value).cast<std::string>() +
                                          " is out of range");
  }
  return static_cast<int>(v);
}

py::object shape_to_python(const TensorSpec& spec) {
  if (!spec.shape) return py::none();
  py::list dims;
  for (size_t i = 0; i < spec.shape->size(); ++i) {
    const int64_t d = (*spec.shape)[i];
    if (d >= 0) {
      dims.append(d);
    } else if (i < spec.dim_names.size() && !spec.dim_names[i].empty()) {
      dims.append(spec.dim_names[i]);
    } else {
      dims.append(py::none());
    }
  }
  return py::tuple(dims);
}

void register_types(py::module_& m) {
  py::class_<ImageSpec>(m, "ImageSpec",
                        "How an image input takes pictures: uint8 [batch, H, W, 3] RGB, resized, scaled and "
                        "normalised inside the graph (read-only).")
      .def_readonly("layout", &ImageSpec::layout, "\"HWC\".")
      .def_readonly("channels", &ImageSpec::channels, "\"RGB\".")
      .def_property_readonly(
          "range", [](const ImageSpec& s) { return std::make_pair(s.range_min, s.range_max); }, "(0, 255).")
      .def_readonly("size", &ImageSpec::size, "[h, w] the graph resizes to.")
      .def_readonly("resize", &ImageSpec::resize, "\"bilinear\" (align_corners false, no antialias).")
      .def_readonly("mean", &ImageSpec::mean, "Per channel, on the [0, 1] scale.")
      .def_readonly("std", &ImageSpec::std, "Per channel, on the [0, 1] scale.");
  py::class_<TensorSpec>(m, "TensorSpec", "One named tensor of the contract (read-only).")
      .def_readonly("name", &TensorSpec::name)
      .def_property_readonly(
          "dtype", [](const TensorSpec& s) -> py::object {
            return s.dtype ? py::object(py::str(dtype_name(*s.dtype))) : py::none();
          })
      .def_property_readonly("shape", &shape_to_python,
                             "A tuple of int (fixed), str (named dynamic) or None (dynamic); None when unknown.")
      .def_readonly("optional", &TensorSpec::optional, "An input that may be left out (None).")
      .def_readonly("data_dependent_dims", &TensorSpec::data_dependent_dims,
                    "Output dims whose size depends on the input values.")
      .def_readonly("image", &TensorSpec::image, "How an image input takes pictures (ImageSpec); None otherwise.");
  py::class_<FeatureSpec>(m, "FeatureSpec", "One input column of a tabular model (read-only).")
      .def_readonly("name", &FeatureSpec::name)
      .def_readonly("type", &FeatureSpec::type, "\"numeric\" or \"categorical\".")
      .def_readonly("vocabulary", &FeatureSpec::vocabulary, "Categorical only: the values, in one-hot order.")
      .def_property_readonly("width", &FeatureSpec::width, "How many floats of the input vector it takes.");
  py::class_<Manifest>(m, "Manifest", R"doc(
An artifact's manifest, parsed and validated by the runtime (the one definition
of the schema).

    >>> m = Manifest.from_json(text, "manifest.json")
)doc")
      .def_readonly("schema", &Manifest::schema)
      .def_readonly("name", &Manifest::name)
      .def_readonly("torchport_version", &Manifest::torchport_version)
      .def_readonly("torch_version", &Manifest::torch_version)
      .def_readonly("export_method", &Manifest::export_method)
      .def_readonly("created", &Manifest::created)
      .def_readonly("inputs", &Manifest::inputs)
      .def_readonly("outputs", &Manifest::outputs)
      .def_readonly("metadata_json", &Manifest::metadata_json)
      .def_readonly("has_golden", &Manifest::has_golden)
      .def_readonly("checksum", &Manifest::checksum)
      .def_readonly("format", &Manifest::format)
      .def_readonly("atol", &Manifest::atol)
      .def_readonly("rtol", &Manifest::rtol)
      .def_property_readonly(
          "dim_bounds",
          [](const Manifest& m) {
            std::map<std::string, std::pair<int64_t, int64_t>> out;
            for (const auto& [name, b] : m.dim_bounds) out[name] = {b.min, b.max};
            return out;
          },
          "Bounds of named dynamic dims: {name: (min, max)}.")
      .def_readonly("constants_json", &Manifest::constants_json, "forward()'s non-tensor arguments, as JSON text.")
      .def_readonly("structure_json", &Manifest::structure_json, "How the outputs nest, as JSON text ('' if flat).")
      .def_readonly("labels", &Manifest::labels, "Class names in output order; [] when none.")
      .def_readonly("features", &Manifest::features, "A tabular model's input columns in order; [] when none.")
      .def_readonly("optimize", &Manifest::optimize)
      .def("to_json", &Manifest::to_json, py::kw_only(), py::arg("indent") = 2, "The manifest as JSON text.")
      .def("output_names_for", &Manifest::output_names_for, py::arg("count"),
           "The names of a call's `count` flat outputs (a per-batch list's item named per element).\n\n"
           "    >>> m.output_names_for(6)")
      .def_static("from_json", &Manifest::from_json, py::arg("text"), py::kw_only(), py::arg("where") = "manifest",
                  "Parses and validates manifest JSON; raises BadArtifactError naming `where`.");
  py::class_<Comparison>(m, "Comparison", "One output compared with its expected value.")
      .def_readonly("output", &Comparison::output)
      .def_readonly("expected_shape", &Comparison::expected_shape)
      .def_readonly("got_shape", &Comparison::got_shape)
      .def_property_readonly("expected_dtype", [](const Comparison& c) { return dtype_name(c.expected_dtype); })
      .def_property_readonly("got_dtype", [](const Comparison& c) { return dtype_name(c.got_dtype); })
      .def_readonly("max_abs_diff", &Comparison::max_abs_diff)
      .def_readonly("max_rel_diff", &Comparison::max_rel_diff)
      .def_readonly("bit_exact", &Comparison::bit_exact)
      .def_readonly("ok", &Comparison::ok);
  py::class_<ArtifactInfo>(m, "ArtifactInfo", "What inspect() reads from an artifact.")
      .def_readonly("manifest", &ArtifactInfo::manifest)
      .def_readonly("format", &ArtifactInfo::format)
      .def_readonly("checksum", &ArtifactInfo::checksum)
      .def_readonly("checksum_ok", &ArtifactInfo::checksum_ok)
      .def_readonly("problem", &ArtifactInfo::problem);
}

void register_model(py::module_& m) {
  py::class_<Model>(m, "Model", R"doc(
A loaded artifact, run by the C++ runtime.

    >>> m = Model("model.pt", threads=2)
    >>> outputs = m.run([torch.rand(4, 1, 8, 8)])
)doc")
      .def(py::init([](const std::string& path, const std::string& device, const py::object& threads,
                       const py::object& warmup_runs, bool check_nan, bool verify_checksum,
                       const std::vector<std::string>& libraries, const py::object& concurrency,
                       bool optimize_graph, const std::string& optimize, const std::string& profile,
                       const std::string& onnxruntime, const std::string& onnx_optimization) {
             Options options;
             options.device = device;
             options.threads = int_option(threads, "threads");
             options.warmup_runs = int_option(warmup_runs, "warmup_runs");
             options.check_nan = check_nan;
             options.verify_checksum = verify_checksum;
             options.libraries = libraries;
             options.concurrency = int_option(concurrency, "concurrency");
             options.optimize_graph = optimize_graph;
             options.optimize = optimize;
             options.profile = profile;
             options.onnxruntime = onnxruntime;
             options.onnx_optimization = onnx_optimization;
             py::gil_scoped_release release;
             return Model::load(path, options);
           }),
           py::arg("path"), py::kw_only(), py::arg("device") = "cpu", py::arg("threads") = 0,
           py::arg("warmup_runs") = 0, py::arg("check_nan") = false, py::arg("verify_checksum") = true,
           py::arg("libraries") = std::vector<std::string>{},
           py::arg("concurrency") = Options{}.concurrency, py::arg("optimize_graph") = true,
           py::arg("optimize") = "", py::arg("profile") = "", py::arg("onnxruntime") = "",
           py::arg("onnx_optimization") = "",
           "Loads an artifact; raises a torchport.errors.TorchportError subclass. For an ONNX model,\n"
           "onnxruntime names the libonnxruntime.so to load (default: $TORCHPORT_ONNXRUNTIME, else the\n"
           "onnxruntime wheel beside torch) and onnx_optimization ONNX Runtime's graph optimisation level\n"
           "('all', 'extended', 'basic', 'none').")
      .def_property_readonly("manifest", &Model::manifest, "The manifest (or the contract derived from forward()).")
      .def_property_readonly("path", &Model::path, "The artifact's path.")
      .def_property_readonly("format", &Model::format, "The backend that loaded it: 'torchscript', 'aoti', 'executorch' or 'onnx'.")
      .def_property_readonly("warmup_ms", &Model::warmup_ms, "Milliseconds spent warming up at load.")
      .def_property_readonly("options", &Model::options, "The Options it runs with (a profile's settings applied).")
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
          [](const Model& self, const py::dict& inputs) { return run_released(self, named_from(inputs)); },
          py::arg("inputs"),
          "Runs the model on tensors given by input name.\n\n"
          "    >>> m.run_named({'image': torch.rand(4, 1, 8, 8)})")
      .def(
          "order_inputs",
          [](const Model& self, const py::dict& inputs) { return tensors_to(self.order_inputs(named_from(inputs))); },
          py::arg("inputs"), "Inputs given by name, in the model's order.")
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
          [](const Model& self, std::optional<double> atol, std::optional<double> rtol) {
            py::gil_scoped_release release;
            return selfcheck(self, atol, rtol).to_json();
          },
          py::kw_only(), py::arg("atol") = py::none(), py::arg("rtol") = py::none(),
          "Runs the golden inputs against the golden outputs (within atol/rtol, or the\n"
          "manifest's tolerance when neither is given); returns the report as JSON text.")
      .def(
          "benchmark",
          [](const Model& self, const py::object& inputs, const py::object& iters, const py::object& warmup) {
            const auto tensors =
                inputs.is_none() ? self.example_inputs() : tensors_from(self, inputs.cast<py::sequence>());
            const int n = int_option(iters, "iters"), w = int_option(warmup, "warmup");
            py::gil_scoped_release release;
            return benchmark(self, tensors, n, w).to_json();
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
  m.def(
      "read_input_file",
      [](const std::string& path, const Manifest& manifest) -> py::object {
        TensorBundle bundle;
        {
          py::gil_scoped_release release;
          bundle = read_input_file(path, manifest);
        }
        if (!bundle.by_name) return tensors_to(bundle.positional);
        py::dict named;
        for (const auto& [name, tensor] : bundle.named) named[py::str(name)] = to_python(tensor);
        return named;
      },
      py::arg("path"), py::arg("manifest"),
      "read_tensor_file, and CSV rows for a model whose manifest has features (columns by name, "
      "categories one-hot), as torchport-run predict reads its --input.\n\n"
      "    >>> read_input_file('rows.csv', model.manifest)");
  m.def(
      "write_tensor_file",
      [](const std::string& path, const py::sequence& tensors, const std::vector<std::string>& protect) {
        std::vector<at::Tensor> items;
        for (size_t i = 0; i < static_cast<size_t>(py::len(tensors)); ++i) {
          items.push_back(from_python(tensors[i], "output " + std::to_string(i)));
        }
        py::gil_scoped_release release;
        write_tensor_file(path, items, protect);
      },
      py::arg("path"), py::arg("tensors"), py::kw_only(), py::arg("protect") = std::vector<std::string>{},
      "Writes tensors as torchport-run predict does (one tensor, else a tuple; torch.load reads it); "
      "`protect` lists files the output may not replace.\n\n    >>> write_tensor_file('out.pt', [y])");
  m.def(
      "write_outputs_file",
      [](const std::string& path, const Model& model, const py::sequence& outputs,
         const std::vector<std::string>& protect) {
        std::vector<at::Tensor> items;
        for (size_t i = 0; i < static_cast<size_t>(py::len(outputs)); ++i) {
          items.push_back(from_python(outputs[i], "output " + std::to_string(i)));
        }
        py::gil_scoped_release release;
        write_outputs_file(path, model.structure_outputs(std::move(items)), protect);
      },
      py::arg("path"), py::arg("model"), py::arg("outputs"), py::kw_only(),
      py::arg("protect") = std::vector<std::string>{},
      "Writes a model's flat outputs nested as its manifest says, readable by plain torch.load\n"
      "(what torchport-run predict writes).");
  m.def(
      "read_outputs_file", [](const std::string& path) { return tensors_to(read_outputs_file(path)); },
      py::arg("path"), "A predict output file's tensors, flattened depth first (manifest output order).");
  m.def("check_output_path", &check_output_path, py::arg("path"), py::arg("protect"),
        "Refuses an output path that is one of `protect` (the same file by any name) or a directory.");
  m.def(
      "write_file",
      [](const std::string& path, const py::bytes& data, bool overwrite, const std::vector<std::string>& protect) {
        std::string bytes = data;
        py::gil_scoped_release release;
        write_file(path, bytes, overwrite, protect);
      },
      py::arg("path"), py::arg("data"), py::kw_only(), py::arg("overwrite") = false,
      py::arg("protect") = std::vector<std::string>{},
      "The one atomic writer (see torchport/io.h): without overwrite, fails if anything exists at path.\n\n"
      "    >>> write_file('model.pt', data, overwrite=True)");
}

void register_tools(py::module_& m) {
  m.def(
      "load_from_memory",
      [](const py::bytes& data, const std::string& name) {
        std::string bytes = data;
        py::gil_scoped_release release;
        return Model::load_from_memory(std::move(bytes), name);
      },
      py::arg("data"), py::arg("name"),
      "Loads artifact bytes with every check Model() applies to a file (export uses it before writing).");
  m.def(
      "inspect",
      [](const std::string& path, bool checksum) {
        py::gil_scoped_release release;
        return inspect(path, checksum);
      },
      py::arg("path"), py::kw_only(), py::arg("checksum") = true,
      "Reads an artifact's manifest and, with `checksum`, hashes its payload against it, without running it.\n\n"
      "    >>> inspect('model.pt').manifest.inputs[0].name");
  m.def(
      "read_golden",
      [](const std::string& path) {
        Golden g;
        {
          py::gil_scoped_release release;
          g = read_golden(path);
        }
        return py::make_tuple(tensors_to(g.inputs), tensors_to(g.outputs));
      },
      py::arg("path"), "The golden (inputs, outputs) stored in an artifact.\n\n    >>> read_golden('model.pt')");
  m.def(
      "read_golden_bytes",
      [](const py::bytes& data, const std::string& where) {
        std::string bytes = data;
        Golden g;
        {
          py::gil_scoped_release release;
          g = read_golden_bytes(bytes, where);
        }
        return py::make_tuple(tensors_to(g.inputs), tensors_to(g.outputs));
      },
      py::arg("data"), py::arg("where"),
      "Golden (inputs, outputs) from the bytes of a golden.pt record kept outside a zip (an ONNX\n"
      "model's metadata), with the same checks as read_golden.\n\n    >>> read_golden_bytes(data, 'm.onnx')");
  m.def(
      "format_answers",
      [](const py::sequence& outputs, const Manifest& manifest, const std::string& format, int top_k) {
        std::vector<at::Tensor> o;
        for (size_t i = 0; i < static_cast<size_t>(py::len(outputs)); ++i) {
          o.push_back(from_python(outputs[i], "output " + std::to_string(i)));
        }
        py::gil_scoped_release release;
        return format_answers(o, manifest, format, top_k);
      },
      py::arg("outputs"), py::arg("manifest"), py::kw_only(), py::arg("format"), py::arg("top_k") = 3,
      "Outputs as readable JSON or CSV text, named, with labels and top-k scores (see torchport/answers.h).\n\n"
      "    >>> format_answers(model.run(x), model.manifest, format='json')");
  m.def(
      "compare_outputs",
      [](const std::vector<std::string>& names, const py::sequence& expected, const py::sequence& got, double atol,
         double rtol) {
        std::vector<at::Tensor> e, g;
        for (size_t i = 0; i < static_cast<size_t>(py::len(expected)); ++i) {
          e.push_back(from_python(expected[i], "expected " + std::to_string(i)));
        }
        for (size_t i = 0; i < static_cast<size_t>(py::len(got)); ++i) {
          g.push_back(from_python(got[i], "output " + std::to_string(i)));
        }
        py::gil_scoped_release release;
        return compare_outputs(names, e, g, atol, rtol);
      },
      py::arg("names"), py::arg("expected"), py::arg("got"), py::kw_only(), py::arg("atol") = 0.0,
      py::arg("rtol") = 0.0,
      "Compares outputs as every runtime is judged (bit-exact, or within atol + rtol * |expected|).\n\n"
      "    >>> [r.ok for r in compare_outputs(['y'], [a], [b], atol=1e-6)]");
  m.def(
      "payload_checksum", [](const py::bytes& archive) { return payload_checksum(std::string(archive)); },
      py::arg("archive"), "The payload checksum of TorchScript archive bytes, as export records it.");
  m.def(
      "profile_checksum",
      [](const std::string& path) {
        py::gil_scoped_release release;
        return profile_checksum(path);
      },
      py::arg("path"),
      "The checksum a tune profile ties an artifact to: its payload checksum, or an ONNX model's whole-file XXH3-128.");
  m.def("supported_dtypes", &supported_dtypes, "The dtype names a manifest may use.");
  m.def("max_threads", &max_threads, "The largest accepted thread count.");
  m.def(
      "check_options",
      [](const std::string& device, const py::object& threads, const py::object& warmup_runs,
         const py::object& concurrency) {
        Options options;
        options.device = device;
        options.threads = int_option(threads, "threads");
        options.warmup_runs = int_option(warmup_runs, "warmup_runs");
        options.concurrency = int_option(concurrency, "concurrency");
        check_options(options);
      },
      py::kw_only(), py::arg("device") = "cpu", py::arg("threads") = 0, py::arg("warmup_runs") = 0,
      py::arg("concurrency") = Options{}.concurrency,
      "Checks load options as Model() does; raises BadOptionError naming the option.");
  m.def("exit_code", [](const std::string& kind) {
    for (const ErrorKind k : error_kinds()) {
      if (kind == to_string(k)) return exit_code(k);
    }
    throw Error(ErrorKind::BadOption, "unknown error kind '" + kind + "'");
  }, py::arg("kind"), "The exit code for an error kind name ('bad_input' -> 4).");
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
  m.attr("WITH_EXECUTORCH") = torchport::with_executorch();
  m.attr("MANIFEST_SCHEMA") = torchport::kManifestSchema;
  m.attr("MANIFEST_FILE") = torchport::kManifestFile;
  m.attr("GOLDEN_FILE") = torchport::kGoldenFile;
  register_errors(m);
  register_types(m);
  register_options(m);
  register_profile(m);
  register_model(m);
  register_io(m);
  register_tools(m);
  register_localize(m);
  register_layout(m);
  register_outputs(m, &tensors_from, [](const torchport::Model&, const py::dict& d) { return named_from(d); });
  register_batcher(m);
}
