// AOTInductor packages (.pt2): an exported program compiled ahead of time into
// a shared library, with torchport's files stored under torchport/ in the same
// zip. read_archive has checked the bytes (zip directory, pickles, manifest,
// checksum) before this runs. LibTorch's AOTIModelPackageLoader runs it; a
// package is tied to the torch version, device, platform and instruction set
// that compiled it, so those are checked before the library inside is loaded.
//
// The loader reads a path, not bytes. Rather than reopening the original path
// (whose content could have changed since it was checked: a TOCTOU window, and
// Model::load_from_memory has no path at all), the checked records are
// extracted by torchport into a fresh private mkdtemp folder (0700, files 0600,
// O_EXCL | O_NOFOLLOW) and the loader is given that folder (its unpacked-package
// mode): it extracts nothing itself, so no record name reaches the file system
// unchecked (check_zip refused every name that could leave the folder), and no
// folder of its own is left behind when its constructor throws. The folder is
// removed when the backend is destroyed, after the loader.

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ATen/cpu/Utils.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include "backends/backend.h"
#include "detail.h"
#include "reader.h"

namespace torchport::detail {
namespace {

using nlohmann::json;

// The name torch._inductor.aoti_compile_and_package gives the one model it packages.
constexpr const char* kModelName = "model";
constexpr const char* kModelDir = "data/aotinductor/model/";

#if defined(__linux__)
constexpr const char* kPlatform = "linux";
#elif defined(__APPLE__)
constexpr const char* kPlatform = "darwin";
#elif defined(_WIN32)
constexpr const char* kPlatform = "win32";
#else
constexpr const char* kPlatform = "";
#endif

#if defined(__x86_64__) || defined(_M_X64)
constexpr const char* kMachine = "x86_64";
#elif defined(__aarch64__)
constexpr const char* kMachine = "aarch64";
#else
constexpr const char* kMachine = "";
#endif

// "2.13.0+cpu" -> "2.13.0": a CPU package runs under the CUDA build of the same
// release, but not under another release.
std::string release(const std::string& version) { return version.substr(0, version.find('+')); }

// Counts the leaves of a torch.utils._pytree spec (the call spec's JSON form):
// a leaf has "type": null.
size_t count_leaves(const json& spec) {
  if (!spec.is_object()) return 0;
  auto type = spec.find("type");
  if (type == spec.end() || type->is_null()) return 1;
  size_t n = 0;
  auto children = spec.find("children_spec");
  if (children != spec.end() && children->is_array()) {
    for (const auto& child : *children) n += count_leaves(child);
  }
  return n;
}

// The call spec is "[protocol, spec]"; returns the spec.
json tree_spec(const std::string& text, const std::string& where) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_array() || doc.size() != 2) {
    throw Error(ErrorKind::BadArtifact, where + ": call spec is not a [protocol, tree] pair");
  }
  return doc[1];
}

// The package's records, extracted into a private folder the loader opens as
// an unpacked package; removed (with everything in it) when this is destroyed.
class PrivateFolder {
 public:
  PrivateFolder(caffe2::serialize::PyTorchStreamReader& zip, const std::string& where) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/torchport-aoti-XXXXXX";
    if (!mkdtemp(templ.data())) {
      throw Error(ErrorKind::Runtime, where + ": cannot create a private folder for the package: " +
                                          std::strerror(errno));
    }
    dir_ = templ;
    try {
      for (const auto& name : zip.getAllRecords()) {
        auto [data, size] = zip.getRecord(name);
        write(name, static_cast<const char*>(data.get()), size, where);
      }
    } catch (...) {
      remove();
      throw;
    }
  }
  ~PrivateFolder() { remove(); }
  PrivateFolder(const PrivateFolder&) = delete;
  PrivateFolder& operator=(const PrivateFolder&) = delete;
  const std::string& path() const { return dir_; }

 private:
  // `name` is a checked relative path (no '..', '.', empty or absolute parts).
  void write(const std::string& name, const char* data, size_t size, const std::string& where) {
    for (size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1)) {
      const std::string sub = dir_ + "/" + name.substr(0, slash);
      if (::mkdir(sub.c_str(), 0700) != 0 && errno != EEXIST) fail(sub, where);
    }
    const std::string file = dir_ + "/" + name;
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) fail(file, where);
    for (size_t done = 0; done < size;) {
      const ssize_t n = ::write(fd, data + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int saved = errno;
        ::close(fd);
        errno = saved;
        fail(file, where);
      }
      done += static_cast<size_t>(n);
    }
    if (::close(fd) != 0) fail(file, where);
  }
  [[noreturn]] void fail(const std::string& file, const std::string& where) const {
    throw Error(ErrorKind::Runtime, where + ": cannot unpack the package into " + file + ": " + std::strerror(errno));
  }
  void remove() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string dir_;
};

class AotiBackend final : public Backend {
 public:
  AotiBackend(std::unique_ptr<PrivateFolder> folder, std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader,
              std::string path)
      : folder_(std::move(folder)), loader_(std::move(loader)), path_(std::move(path)) {}

  std::string format() const override { return "aoti"; }

  std::vector<at::Tensor> forward(std::vector<at::Tensor> inputs) const override {
    // The loader hands each call a free runner of its pool (Options::concurrency)
    // and waits for one when all are busy, so concurrent calls are safe.
    return loader_->boxed_run(std::move(inputs));
  }

  Manifest signature() const override {
    const std::vector<std::string> spec = loader_->get_call_spec();
    if (spec.size() != 2) {
      throw Error(ErrorKind::BadArtifact, "'" + path_ + "': expected an input and an output call spec, got " +
                                              std::to_string(spec.size()));
    }
    // Inputs: ((args...), {kwargs}); outputs: a tensor or a tuple of them.
    const json in = tree_spec(spec[0], "'" + path_ + "' inputs");
    const json out = tree_spec(spec[1], "'" + path_ + "' outputs");
    const auto& in_children = in.value("children_spec", json::array());
    const size_t n_in = in_children.empty() ? 0 : count_leaves(in_children[0]);
    const size_t n_out = count_leaves(out);
    Manifest m;
    m.name = "model";
    for (size_t i = 0; i < n_in; ++i) {
      m.inputs.push_back(TensorSpec{n_in == 1 ? "input" : "input_" + std::to_string(i), std::nullopt,
                                    std::nullopt});
    }
    for (size_t i = 0; i < n_out; ++i) {
      m.outputs.push_back(TensorSpec{n_out == 1 ? "output" : "output_" + std::to_string(i),
                                     std::nullopt, std::nullopt});
    }
    return m;
  }

 private:
  // Destroyed after the loader, which may read its files while it lives.
  std::unique_ptr<PrivateFolder> folder_;
  // run() is not const but takes a runner from a locked pool.
  mutable std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
  std::string path_;
};

// The AOTI_* metadata the compiler recorded beside the model's library.
json package_metadata(caffe2::serialize::PyTorchStreamReader& zip, const std::string& path) {
  std::vector<std::string> candidates;
  for (const auto& name : zip.getAllRecords()) {
    if (name.rfind(kModelDir, 0) == 0 && name.size() > 14 &&
        name.compare(name.size() - 14, 14, "_metadata.json") == 0) {
      candidates.push_back(name);
    }
  }
  if (candidates.empty()) {
    throw Error(ErrorKind::BadArtifact, "'" + path + "' holds no AOTInductor model '" +
                                            kModelName + "' (no " + kModelDir + "*_metadata.json)");
  }
  // The wrapper's metadata when there is one; kernel metadata says the same.
  std::sort(candidates.begin(), candidates.end(), [](const std::string& a, const std::string& b) {
    return (a.find("wrapper") != std::string::npos) > (b.find("wrapper") != std::string::npos);
  });
  auto [data, size] = zip.getRecord(candidates.front());
  const std::string text(static_cast<const char*>(data.get()), size);
  if (text.size() > limits::kJsonBytes) {
    throw Error(ErrorKind::BadArtifact, "'" + path + "' " + candidates.front() + ": " +
                                            std::to_string(text.size()) + " bytes, more than the limit of " +
                                            std::to_string(limits::kJsonBytes));
  }
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    throw Error(ErrorKind::BadArtifact,
                "'" + path + "' " + candidates.front() + ": not a JSON object");
  }
  return doc;
}

std::string meta(const json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : "";
}

// Refuses a package this process cannot run, naming what it was built for.
void check_built_for_here(caffe2::serialize::PyTorchStreamReader& zip, const std::string& path,
                          const std::optional<Manifest>& manifest, const c10::Device& device) {
  if (manifest && !manifest->torch_version.empty() &&
      release(manifest->torch_version) != release(torch_version())) {
    throw Error(ErrorKind::BadArtifact,
                "'" + path + "': AOTInductor package compiled with torch " + manifest->torch_version +
                    ", this runtime uses torch " + torch_version() +
                    "; a .pt2 runs only on the torch release that compiled it: re-export it with torch " +
                    release(torch_version()) + " (or use the TorchScript artifact)");
  }
  const json doc = package_metadata(zip, path);
  const std::string built_device = meta(doc, "AOTI_DEVICE_KEY");
  const std::string want_device = c10::DeviceTypeName(device.type(), /*lower_case=*/true);
  if (built_device != want_device) {
    throw Error(ErrorKind::BadArtifact,
                "'" + path + "': AOTInductor package compiled for device '" + built_device +
                    "', but the model is loaded on '" + device.str() +
                    "'; export it again for " + want_device + " (a .pt2 runs only on the device type it was compiled for)");
  }
  const std::string platform = meta(doc, "AOTI_PLATFORM"), machine = meta(doc, "AOTI_MACHINE");
  if ((!platform.empty() && *kPlatform && platform != kPlatform) ||
      (!machine.empty() && *kMachine && machine != kMachine)) {
    throw Error(ErrorKind::BadArtifact, "'" + path + "': AOTInductor package compiled for " + platform +
                                            "/" + machine + ", this runtime runs on " + kPlatform + "/" +
                                            kMachine);
  }
  if (device.is_cpu()) {
    // "AVX2", "AVX512", "AVX512 AVX512_VNNI": each token must be a capability
    // this CPU has (cpuinfo's names; AVX512 is its foundation subset).
    const auto caps = at::cpu::get_cpu_capabilities();
    std::istringstream tokens(meta(doc, "AOTI_CPU_ISA"));
    std::string token;
    while (tokens >> token) {
      std::transform(token.begin(), token.end(), token.begin(), ::tolower);
      const std::string key = token == "avx512" ? "avx512_f" : token;
      auto it = caps.find(key);
      if (it != caps.end() && it->second.isBool() && !it->second.toBool()) {
        throw Error(ErrorKind::BadArtifact,
                    "'" + path + "': AOTInductor package compiled for the " + meta(doc, "AOTI_CPU_ISA") +
                        " instruction set, which this CPU lacks (" + token +
                        "); export it again on (or for) this machine");
      }
    }
  }
}

}  // namespace

bool is_aoti_package(const std::vector<std::string>& records) {
  return std::any_of(records.begin(), records.end(), [](const std::string& name) {
    return name == "archive_format" || name.rfind("data/aotinductor/", 0) == 0;
  });
}

std::unique_ptr<Backend> open_aoti(const OpenRequest& request) {
  const std::string& path = request.path;
  const Options& options = request.options;
  const c10::Device& device = request.device;
  std::unique_ptr<PrivateFolder> folder;
  try {
    caffe2::serialize::PyTorchStreamReader zip(memory_reader(request.bytes));
    check_built_for_here(zip, path, request.files.manifest, device);
    folder = std::make_unique<PrivateFolder>(zip, "'" + path + "'");
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::BadArtifact, "'" + path + "' is not a loadable AOTInductor package: " + brief(e));
  }
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  try {
    loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
        folder->path(), kModelName, /*run_single_threaded=*/false, static_cast<size_t>(options.concurrency),
        device.has_index() ? device.index() : static_cast<c10::DeviceIndex>(-1));
  } catch (const std::exception& e) {
    throw Error(ErrorKind::BadArtifact, "'" + path + "' is not a loadable AOTInductor package: " + brief(e));
  }
  return std::make_unique<AotiBackend>(std::move(folder), std::move(loader), path);
}

}  // namespace torchport::detail
