// Options and Profile for Python: thin wrappers, the rules live in the library.

#include "profile.h"

#include <pybind11/stl.h>

#include <torchport/profile.h>
#include <torchport/torchport.h>

namespace py = pybind11;

namespace torchport::bindings {

void register_options(py::module_& m) {
  py::class_<Options>(m, "Options", R"doc(
The options a loaded Model runs with, a profile's settings applied (read-only).

    >>> Model("model.pt", profile="model.profile.json").options.threads
)doc")
      .def_readonly("device", &Options::device)
      .def_readonly("threads", &Options::threads)
      .def_readonly("warmup_runs", &Options::warmup_runs)
      .def_readonly("check_nan", &Options::check_nan)
      .def_readonly("verify_checksum", &Options::verify_checksum)
      .def_readonly("concurrency", &Options::concurrency)
      .def_readonly("optimize_graph", &Options::optimize_graph)
      .def_readonly("libraries", &Options::libraries)
      .def_readonly("optimize", &Options::optimize)
      .def_readonly("profile", &Options::profile)
      .def_readonly("onnxruntime", &Options::onnxruntime)
      .def_readonly("onnx_optimization", &Options::onnx_optimization);
}

void register_profile(py::module_& m) {
  py::class_<Profile>(m, "Profile", R"doc(
A tuning profile (torchport tune): settings tied to one artifact by its checksum.

    >>> p = Profile.read("model.profile.json"); p.threads, p.optimize_graph
)doc")
      .def(py::init([](const std::string& artifact_checksum, const std::string& format,
                       const std::string& file_checksum, int threads, int warmup_runs, bool optimize_graph,
                       const std::string& optimize, double atol, double rtol, int batch,
                       const std::string& measured_json) {
             Profile p;
             p.artifact_checksum = artifact_checksum;
             p.format = format;
             p.file_checksum = file_checksum;
             p.threads = threads;
             p.warmup_runs = warmup_runs;
             p.optimize_graph = optimize_graph;
             p.optimize = optimize;
             p.atol = atol;
             p.rtol = rtol;
             p.batch = batch;
             p.measured_json = measured_json;
             // Built only through the parser's checks: never a profile the loader would refuse.
             return Profile::from_json(p.to_json(), "profile");
           }),
           py::kw_only(), py::arg("artifact_checksum"), py::arg("format"), py::arg("file_checksum"),
           py::arg("threads") = 0, py::arg("warmup_runs") = 0, py::arg("optimize_graph") = true,
           py::arg("optimize") = "", py::arg("atol") = 0.0, py::arg("rtol") = 0.0, py::arg("batch") = 1,
           py::arg("measured_json") = "{}", "A profile, checked as the loader checks one.")
      .def_readonly("schema", &Profile::schema)
      .def_readonly("artifact_checksum", &Profile::artifact_checksum)
      .def_readonly("format", &Profile::format)
      .def_readonly("file_checksum", &Profile::file_checksum)
      .def_readonly("threads", &Profile::threads)
      .def_readonly("warmup_runs", &Profile::warmup_runs)
      .def_readonly("optimize_graph", &Profile::optimize_graph)
      .def_readonly("optimize", &Profile::optimize)
      .def_readonly("atol", &Profile::atol)
      .def_readonly("rtol", &Profile::rtol)
      .def_readonly("batch", &Profile::batch)
      .def_readonly("measured_json", &Profile::measured_json)
      .def("to_json", &Profile::to_json, py::kw_only(), py::arg("indent") = 2, "The profile as JSON text.")
      .def_static("from_json", &Profile::from_json, py::arg("text"), py::arg("where") = "profile",
                  "Parses profile JSON; raises BadArtifactError naming the field.")
      .def_static(
          "read",
          [](const std::string& path) {
            py::gil_scoped_release release;
            return Profile::read(path);
          },
          py::arg("path"), "Reads a profile file; raises NotFoundError or BadArtifactError.");
}

}  // namespace torchport::bindings
