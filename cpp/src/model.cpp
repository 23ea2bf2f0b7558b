// Model: loading, the input contract, and running under InferenceMode.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <limits>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <torchport/profile.h>
#include <torchport/tools.h>

#include "detail.h"
#include "libraries.h"
#include "reader.h"

namespace torchport {
namespace detail {

std::string brief(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  const std::string text = c10_error ? c10_error->what_without_backtrace() : e.what();
  // The TorchScript interpreter prints the serialized code's traceback first
  // and the reason on its last line; other errors say it on their first.
  const bool interpreter = text.find("The following operation failed") != std::string::npos;
  std::istringstream lines(text);
  std::string line, picked;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    picked = line;
    if (!interpreter) break;
  }
  return picked.empty() ? text : picked;
}

namespace {

std::unique_ptr<Backend> open_backend(const OpenRequest& request) {
  // The one routing point between artifact formats: the records read_archive
  // found in the checked bytes decide, not the file's name.
  static const std::map<std::string, OpenBackend> kBackends = {
      {"torchscript", open_torchscript}, {"aoti", open_aoti}, {"executorch", open_executorch},
      {"onnx", open_onnxruntime}};
  const std::string& format = request.files.format;
  if (!request.options.optimize.empty() && format != "torchscript") {
    throw Error(ErrorKind::BadOption, "optimize: \"" + request.options.optimize + "\" applies to TorchScript artifacts, '" +
                                          request.path + "' is " + format);
  }
  const auto backend = kBackends.find(format);
  if (backend == kBackends.end()) {
    throw Error(ErrorKind::BadArtifact, "'" + request.path + "': no backend reads format \"" + format +
                                            "\" (expected torchscript, aoti, executorch or onnx)");
  }
  return backend->second(request);
}

// An output that shares its tensor or its storage with anything but the other
// outputs of the same call (a parameter, a buffer, a constant, an input) is
// copied, so a caller's in-place edit can never reach the model or a later
// call. Reference counts tell: a fresh output is held by this call alone.
void unshare_outputs(std::vector<at::Tensor>& outputs) {
  std::map<const c10::TensorImpl*, long> tensor_refs;
  std::map<const c10::StorageImpl*, long> storage_refs;
  for (const auto& t : outputs) {
    if (!t.defined()) continue;
    if (tensor_refs[t.unsafeGetTensorImpl()]++ == 0 && t.has_storage()) {
      ++storage_refs[t.storage().unsafeGetStorageImpl()];
    }
  }
  for (auto& t : outputs) {
    if (!t.defined()) continue;
    const c10::TensorImpl* impl = t.unsafeGetTensorImpl();
    const bool shared_tensor = static_cast<long>(t.use_count()) > tensor_refs[impl];
    const bool shared_storage =
        t.has_storage() &&
        static_cast<long>(t.storage().use_count()) > storage_refs[t.storage().unsafeGetStorageImpl()];
    if (shared_tensor || shared_storage) t = t.clone();
  }
}

// Bytes a contiguous copy of `t` would take, or -1 when that overflows.
int64_t contiguous_bytes(const at::Tensor& t) {
  int64_t n = static_cast<int64_t>(t.element_size());
  for (const int64_t d : t.sizes()) {
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

void check_against_signature(const Manifest& manifest, const Manifest& signature,
                             const std::string& where) {
  if (manifest.inputs.size() != signature.inputs.size()) {
    std::ostringstream msg;
    msg << where << ": manifest lists " << manifest.inputs.size()
        << " inputs but the model's forward() takes " << signature.inputs.size() << " (";
    for (size_t i = 0; i < signature.inputs.size(); ++i) {
      msg << (i ? ", " : "") << signature.inputs[i].name;
    }
    msg << ")";
    throw Error(ErrorKind::BadArtifact, msg.str());
  }
}

// AOTInductor's kernels index their inputs by the shapes they were compiled
// for without checking them, so the manifest is the only guard: every input
// must state its dtype and shape (checked before each call), and the package's
// own call spec must agree on the output count too.
void check_aoti_contract(const Manifest& manifest, const Manifest& signature, const std::string& where) {
  if (manifest.outputs.size() != signature.outputs.size()) {
    throw Error(ErrorKind::BadArtifact, where + ": manifest lists " + std::to_string(manifest.outputs.size()) +
                                            " outputs but the package's call spec returns " +
                                            std::to_string(signature.outputs.size()));
  }
  for (const auto& spec : manifest.inputs) {
    if (!spec.dtype || !spec.shape) {
      throw Error(ErrorKind::BadArtifact,
                  where + ": input '" + spec.name + "' has no " + (!spec.dtype ? "dtype" : "shape") +
                      "; a .pt2's inputs are checked against the manifest before its kernels run, so every "
                      "input must state both");
    }
    if (spec.optional) {
      throw Error(ErrorKind::BadArtifact, where + ": input '" + spec.name +
                                              "' is marked optional, which an AOTInductor package cannot take");
    }
  }
}

// "[batch, 3, 32, 32]": named dynamic dims by name, unnamed ones as "*".
std::string spec_shape(const TensorSpec& spec) {
  std::string out = "[";
  for (size_t i = 0; i < spec.shape->size(); ++i) {
    if (i) out += ", ";
    const int64_t d = (*spec.shape)[i];
    if (d >= 0) {
      out += std::to_string(d);
    } else if (i < spec.dim_names.size() && !spec.dim_names[i].empty()) {
      out += spec.dim_names[i];
    } else {
      out += "*";
    }
  }
  return out + "]";
}

// Dimensions that share a name must agree across the inputs of one call.
void check_named_dims(const std::vector<TensorSpec>& specs, const std::vector<at::Tensor>& inputs) {
  std::map<std::string, std::pair<int64_t, std::string>> seen;  // name -> (size, input)
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& names = specs[i].dim_names;
    for (size_t d = 0; inputs[i].defined() && d < names.size() && d < static_cast<size_t>(inputs[i].dim()); ++d) {
      if (names[d].empty()) continue;
      const int64_t size = inputs[i].size(static_cast<int64_t>(d));
      auto [it, inserted] = seen.emplace(names[d], std::make_pair(size, specs[i].name));
      if (!inserted && it->second.first != size) {
        throw Error(ErrorKind::BadInput,
                    "input '" + specs[i].name + "': dim " + std::to_string(d) + " (" + names[d] +
                        ") is " + std::to_string(size) + ", but input '" + it->second.second +
                        "' has " + names[d] + " = " + std::to_string(it->second.first));
      }
    }
  }
}

// A bounded dimension ("seq" in 1..512, the model's position embeddings) is
// checked before the model runs, where it would fail deep inside.
void check_bounds(const TensorSpec& spec, const at::Tensor& t, const std::map<std::string, DimBounds>& bounds) {
  if (bounds.empty()) return;
  for (size_t d = 0; d < spec.dim_names.size() && d < static_cast<size_t>(t.dim()); ++d) {
    auto it = bounds.find(spec.dim_names[d]);
    if (it == bounds.end()) continue;
    const int64_t size = t.size(static_cast<int64_t>(d));
    if (size < it->second.min || size > it->second.max) {
      throw Error(ErrorKind::BadInput, "input '" + spec.name + "': dim " + std::to_string(d) + " (" + it->first +
                                           ") is " + std::to_string(size) + ", expected " +
                                           std::to_string(it->second.min) + " to " + std::to_string(it->second.max) +
                                           " (the bounds the model was exported with)");
    }
  }
}

// An NCHW model fed channels-last data: the channel count sits last instead of
// second, and the spatial dimensions moved left by one.
bool looks_channels_last(const std::vector<int64_t>& expected, c10::IntArrayRef got) {
  if (expected.size() != 4 || got.size() != 4 || expected[1] < 0) return false;
  if (got[3] != expected[1] || got[1] == expected[1]) return false;
  for (int d = 2; d < 4; ++d) {
    if (expected[d] >= 0 && got[d - 1] != expected[d]) return false;
  }
  return true;
}

void check_one(const TensorSpec& spec, const at::Tensor& t, const ModelState& state) {
  const std::string who = "input '" + spec.name + "'";
  if (!t.defined()) {
    throw Error(ErrorKind::BadInput,
                who + ": got None (an undefined tensor), but it is required; only optional inputs may be left out");
  }
  if (t.layout() != c10::kStrided) {
    std::ostringstream got;
    got << t.layout();
    throw Error(ErrorKind::BadInput, who + ": expected a dense tensor, got layout " + got.str());
  }
  if (t.device() != state.device) {
    throw Error(ErrorKind::BadInput, who + ": expected a tensor on " + state.device.str() +
                                         ", got one on " + t.device().str());
  }
  if (spec.dtype && t.scalar_type() != *spec.dtype) {
    throw Error(ErrorKind::BadInput, who + ": expected dtype " + dtype_name(*spec.dtype) +
                                         ", got " + dtype_name(t.scalar_type()));
  }
  if (!spec.shape) return;
  const auto& expected = *spec.shape;
  const auto got = t.sizes().vec();
  if (got.size() != expected.size()) {
    throw Error(ErrorKind::BadInput,
                who + ": expected " + std::to_string(expected.size()) + " dimensions " +
                    spec_shape(spec) + ", got " + std::to_string(got.size()) + " (shape " +
                    shape_string(got) + ")");
  }
  for (size_t d = 0; d < expected.size(); ++d) {
    if (expected[d] >= 0 && got[d] != expected[d]) {
      std::string msg = who + ": dim " + std::to_string(d) + " expected " +
                        std::to_string(expected[d]) + ", got " + std::to_string(got[d]) +
                        " (shape " + shape_string(got) + " vs " + spec_shape(spec) + ")";
      if (looks_channels_last(expected, t.sizes())) {
        msg += "; this looks like channels-last (NHWC) data for an NCHW model: pass "
               "x.permute(0, 3, 1, 2)";
      }
      throw Error(ErrorKind::BadInput, msg);
    }
  }
}

// A contiguous tensor with the input's values; an expanded or strided view
// too large to copy is a BadInput naming the bytes it asked for.
at::Tensor contiguous(const TensorSpec& spec, const at::Tensor& t) {
  if (t.is_contiguous()) return t;
  const int64_t bytes = contiguous_bytes(t);
  // Refused rather than tried: on an overcommitting system a copy larger than
  // the machine's memory "succeeds" and the process is killed later.
  static const int64_t memory = static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGE_SIZE);
  try {
    if (bytes < 0 || (memory > 0 && bytes > memory)) throw std::bad_alloc();
    return t.contiguous();
  } catch (const std::exception&) {
    throw Error(ErrorKind::BadInput,
                "input '" + spec.name + "': a contiguous copy of this " + shape_string(t.sizes().vec()) +
                    " view needs " + (bytes < 0 ? std::string("more than 2^63") : std::to_string(bytes)) +
                    " bytes, which cannot be allocated");
  }
}

}  // namespace

c10::Device parse_device(const std::string& text) {
  std::optional<c10::Device> device;
  try {
    device = c10::Device(text);
  } catch (const std::exception&) {
  }
  if (!device || (!device->is_cpu() && !device->is_cuda())) {
    throw Error(ErrorKind::BadOption, "device: expected 'cpu', 'cuda' or 'cuda:N', got '" + text + "'");
  }
  if (device->is_cpu()) {
    if (device->has_index() && device->index() != 0) {
      throw Error(ErrorKind::BadOption, "device: expected 'cpu' or 'cpu:0', got '" + text + "'");
    }
    return c10::Device(c10::kCPU);
  }
  if (!at::hasCUDA()) {
    throw Error(ErrorKind::BadOption, "device '" + text + "': this LibTorch has no CUDA device available");
  }
  const int count = static_cast<int>(at::getNumGPUs());
  const int index = device->has_index() ? device->index() : 0;
  if (index >= count) {
    throw Error(ErrorKind::BadOption, "device '" + text + "': expected an index below " + std::to_string(count) +
                                          " (CUDA devices present), got " + std::to_string(index));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

Options checked_options(const Options& options) {
  Options checked = options;
  if (options.threads < 0 || options.threads > max_threads()) {
    throw Error(ErrorKind::BadOption, "threads: expected 0 (LibTorch's default) to " +
                                          std::to_string(max_threads()) + ", got " +
                                          std::to_string(options.threads));
  }
  if (options.warmup_runs < 0 || options.warmup_runs > kMaxWarmupRuns) {
    throw Error(ErrorKind::BadOption, "warmup_runs: expected 0 to " + std::to_string(kMaxWarmupRuns) +
                                          ", got " + std::to_string(options.warmup_runs));
  }
  if (options.concurrency < 1 || options.concurrency > kMaxConcurrency) {
    throw Error(ErrorKind::BadOption, "concurrency: expected 1 to " + std::to_string(kMaxConcurrency) +
                                          ", got " + std::to_string(options.concurrency));
  }
  if (!options.optimize.empty() && options.optimize != "freeze" && options.optimize != "fast") {
    throw Error(ErrorKind::BadOption, "optimize: expected \"\" (as exported), \"freeze\" or \"fast\", got \"" +
                                          options.optimize + "\"");
  }
  const auto& level = options.onnx_optimization;
  if (!level.empty() && level != "all" && level != "extended" && level != "basic" && level != "none") {
    throw Error(ErrorKind::BadOption, "onnx_optimization: expected \"all\", \"extended\", \"basic\" or \"none\", got \"" +
                                          level + "\"");
  }
  if (options.onnxruntime.find('\0') != std::string::npos) {
    throw Error(ErrorKind::BadOption, "onnxruntime: the library path holds a NUL byte");
  }
  checked.device = parse_device(options.device).str();
  return checked;
}

std::vector<at::Tensor> validate_inputs(const ModelState& state,
                                        const std::vector<at::Tensor>& inputs) {
  const auto& specs = state.manifest.inputs;
  if (inputs.size() != specs.size()) {
    std::ostringstream msg;
    msg << "model '" << state.manifest.name << "' expects " << specs.size() << " input"
        << (specs.size() == 1 ? "" : "s") << " (";
    for (size_t i = 0; i < specs.size(); ++i) msg << (i ? ", " : "") << specs[i].name;
    msg << "), got " << inputs.size();
    throw Error(ErrorKind::BadInput, msg.str());
  }
  std::vector<at::Tensor> ready;
  ready.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (specs[i].optional && !inputs[i].defined()) {  // left out: forward() gets None
      ready.push_back(inputs[i]);
      continue;
    }
    check_one(specs[i], inputs[i], state);
    check_bounds(specs[i], inputs[i], state.manifest.dim_bounds);
    if (state.options.check_nan && at::isFloatingType(inputs[i].scalar_type()) &&
        !at::isfinite(inputs[i]).all().item<bool>()) {
      throw Error(ErrorKind::BadInput,
                  "input '" + specs[i].name + "': holds NaN or Inf values (check_nan is on)");
    }
    ready.push_back(contiguous(specs[i], inputs[i]));
  }
  check_named_dims(specs, ready);
  return ready;
}

std::vector<at::Tensor> first_row(const Manifest& manifest, const std::vector<at::Tensor>& inputs) {
  // Only when every input shares one named dynamic first dim that may be 1.
  std::string batch;
  for (size_t i = 0; i < manifest.inputs.size(); ++i) {
    const auto& spec = manifest.inputs[i];
    if (i >= inputs.size() || !inputs[i].defined() || inputs[i].dim() == 0 || inputs[i].size(0) < 2) return {};
    if (!spec.shape || spec.shape->empty() || (*spec.shape)[0] >= 0 || spec.dim_names.empty()) return {};
    if (spec.dim_names[0].empty() || (!batch.empty() && spec.dim_names[0] != batch)) return {};
    batch = spec.dim_names[0];
  }
  if (batch.empty()) return {};
  auto bounds = manifest.dim_bounds.find(batch);
  if (bounds != manifest.dim_bounds.end() && bounds->second.min > 1) return {};
  std::vector<at::Tensor> rows;
  for (const auto& t : inputs) rows.push_back(t.narrow(0, 0, 1).contiguous());
  return rows;
}

}  // namespace detail

void check_options(const Options& options) { detail::checked_options(options); }

int max_threads() {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(256, 4 * cores);
}

Model::Model(std::shared_ptr<const detail::ModelState> state) : state_(std::move(state)) {}

std::string detail::profile_checksum(const std::string& path, const std::shared_ptr<const std::string>& bytes,
                                     const std::string& where, std::string* format) {
  const detail::ArchiveFiles files = detail::read_archive(path, bytes, detail::Checksum::Skip);
  *format = files.format;
  if (files.manifest && !files.manifest->checksum.empty()) return files.manifest->checksum;
  if (files.manifest && files.format == "onnx") return detail::file_checksum(*bytes);
  throw Error(ErrorKind::BadArtifact, where + "'" + path +
                                          "' records no checksum to tie a profile to (a plain TorchScript file, or "
                                          "an export older than checksums); export it again with torchport");
}


namespace {

// The file and options a profile picks for the artifact at `path` (its bytes
// in `bytes`): a profile tuned for another artifact, or a sibling that changed
// since, is refused, never half applied.
Options use_profile(std::string& path, std::shared_ptr<const std::string>& bytes, const Options& options,
                    bool may_switch_file) {
  const Profile profile = Profile::read(options.profile);
  const std::string where = "profile '" + options.profile + "'";
  std::string format;
  const std::string checksum = detail::profile_checksum(path, bytes, where + ": ", &format);
  if (checksum != profile.artifact_checksum) {
    throw Error(ErrorKind::BadArtifact,
                where + ": field 'artifact_checksum' is " + profile.artifact_checksum + ", but '" + path +
                    "' records " + checksum + ": the profile was tuned for another artifact (or an earlier export "
                    "of this one); run torchport tune on it again");
  }
  if (profile.format != format) {
    static const std::map<std::string, std::string> suffix = {
        {"torchscript", ".pt"}, {"aoti", ".pt2"}, {"executorch", ".pte"}, {"onnx", ".onnx"}};
    const std::string sibling = std::filesystem::path(path).replace_extension(suffix.at(profile.format)).string();
    if (!may_switch_file) {
      throw Error(ErrorKind::BadOption, where + ": field 'format' picks the " + profile.format + " sibling '" +
                                            sibling + "', which an artifact loaded from memory does not have");
    }
    auto sibling_bytes = detail::read_regular_file(sibling, "artifact", ErrorKind::BadArtifact);
    std::string sibling_format;
    const std::string sibling_checksum = detail::profile_checksum(sibling, sibling_bytes, where + ": ", &sibling_format);
    if (sibling_format != profile.format || sibling_checksum != profile.file_checksum) {
      throw Error(ErrorKind::BadArtifact,
                  where + ": field 'file_checksum' is " + profile.file_checksum + " (" + profile.format + "), but '" +
                      sibling + "' is " + sibling_format + " with " + sibling_checksum +
                      ": the sibling changed since tuning; run torchport tune again");
    }
    path = sibling;
    bytes = std::move(sibling_bytes);
  } else if (profile.file_checksum != checksum) {
    throw Error(ErrorKind::BadArtifact, where + ": field 'file_checksum' is " + profile.file_checksum + ", but '" +
                                            path + "' records " + checksum);
  }
  return detail::checked_options(apply_profile(options, profile));
}

}  // namespace

Model Model::load(const std::string& path, const Options& options) {
  Options checked = detail::checked_options(options);
  // The file is read once; everything below parses these bytes.
  auto bytes = detail::read_regular_file(path, "artifact", ErrorKind::BadArtifact);
  std::string run_path = path;
  if (!checked.profile.empty()) checked = use_profile(run_path, bytes, checked, /*may_switch_file=*/true);
  return load_bytes(run_path, std::move(bytes), checked);
}

Model Model::load_from_memory(std::string bytes, const std::string& name, const Options& options) {
  Options checked = detail::checked_options(options);
  if (bytes.empty()) throw Error(ErrorKind::BadArtifact, "artifact '" + name + "' is empty");
  auto shared = std::make_shared<const std::string>(std::move(bytes));
  std::string run_path = name;
  if (!checked.profile.empty()) checked = use_profile(run_path, shared, checked, /*may_switch_file=*/false);
  return load_bytes(run_path, std::move(shared), checked);
}

Model Model::load_bytes(const std::string& path, std::shared_ptr<const std::string> bytes, const Options& options) {
  auto state = std::make_shared<detail::ModelState>();
  state->path = path;
  state->options = options;
  state->device = c10::Device(options.device);
  // Operator libraries before the model, whose code refers to their ops.
  detail::load_libraries(options.libraries);
  // torchport's files and the checksum first: nothing of a corrupted model is
  // deserialized.
  detail::ArchiveFiles files = detail::read_archive(path, bytes, options.verify_checksum ? detail::Checksum::Verify : detail::Checksum::Skip);
  const detail::OpenRequest request{path, bytes, files, files.manifest ? &*files.manifest : nullptr, options,
                                    state->device};
  state->backend = detail::open_backend(request);
  const Manifest signature = state->backend->signature();
  const std::string where = "'" + path + "' torchport/manifest.json";
  if (!files.manifest) {
    state->manifest = signature;
  } else {
    state->manifest = std::move(*files.manifest);
    detail::check_against_signature(state->manifest, signature, where);
    if (files.format == "aoti") detail::check_aoti_contract(state->manifest, signature, where);
  }
  detail::per_batch_counts(state->manifest.structure_json, state->fixed_outputs, state->item_outputs);
  if (!files.golden_bytes.empty()) {
    state->golden = detail::parse_golden(files.golden_bytes, "'" + path + "' torchport/golden.pt");
    state->manifest.has_golden = true;
  } else if (state->manifest.has_golden) {
    throw Error(ErrorKind::BadArtifact,
                where + " says golden examples are stored, but torchport/golden.pt is missing");
  }

  // Only a model that loaded changes the process-wide pool.
  if (options.threads > 0) at::set_num_threads(options.threads);
  Model model(state);
  if (options.warmup_runs > 0) {
    const auto inputs = model.example_inputs();
    // Golden examples hold a few rows, but a server of single requests calls
    // at one: LibTorch sets up per input shape (the executor's plan, kernel
    // blocking), so one row is warmed too where the batch dim allows it
    // (benchmarks/first_call_excess.py).
    const auto one_row = detail::first_row(state->manifest, inputs);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < options.warmup_runs; ++i) {
      model.run(inputs);
      if (!one_row.empty()) model.run(one_row);
    }
    state->warmup_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  return model;
}

const Manifest& Model::manifest() const { return state_->manifest; }
const Options& Model::options() const { return state_->options; }
const std::string& Model::path() const { return state_->path; }
std::string Model::format() const { return state_->backend->format(); }
double Model::warmup_ms() const { return state_->warmup_ms; }

std::vector<at::Tensor> Model::run(const std::vector<at::Tensor>& inputs) const {
  const auto ready = detail::validate_inputs(*state_, inputs);
  std::vector<at::Tensor> outputs;
  try {
    c10::InferenceMode guard;
    outputs = state_->backend->forward(ready);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Runtime,
                "model '" + state_->manifest.name + "' failed while running: " + detail::brief(e));
  }
  const auto& specs = state_->manifest.outputs;
  if (state_->item_outputs > 0) {
    // A list per batch element: as many items as the inputs' "batch" dim.
    int64_t batch = -1;
    for (size_t i = 0; i < ready.size() && batch < 0; ++i) {
      const auto& names = state_->manifest.inputs[i].dim_names;
      const auto dim = std::find(names.begin(), names.end(), "batch") - names.begin();
      if (ready[i].defined() && dim < static_cast<int64_t>(names.size()) && dim < ready[i].dim()) {
        batch = ready[i].size(dim);
      }
    }
    const size_t expected = state_->fixed_outputs + static_cast<size_t>(std::max<int64_t>(batch, 0)) * state_->item_outputs;
    if (batch >= 0 && outputs.size() != expected) {
      throw Error(ErrorKind::Runtime, "model '" + state_->manifest.name + "' returned " +
                                          std::to_string(outputs.size()) + " outputs; at batch " +
                                          std::to_string(batch) + " its manifest expects " + std::to_string(expected) +
                                          " (" + std::to_string(state_->fixed_outputs) + " + batch x " +
                                          std::to_string(state_->item_outputs) + ")");
    }
  } else if (!specs.empty() && outputs.size() != specs.size()) {
    throw Error(ErrorKind::Runtime, "model '" + state_->manifest.name + "' returned " +
                                        std::to_string(outputs.size()) + " outputs, manifest lists " +
                                        std::to_string(specs.size()));
  }
  detail::unshare_outputs(outputs);
  return outputs;
}

Outputs Model::run_structured(const std::vector<at::Tensor>& inputs) const {
  return structure_outputs(run(inputs));
}

Outputs Model::structure_outputs(std::vector<at::Tensor> outputs) const {
  Outputs out;
  out.names = state_->manifest.output_names_for(outputs.size());
  out.structure = detail::build_structure(state_->manifest.structure_json, outputs);
  out.tensors = std::move(outputs);
  return out;
}

std::vector<at::Tensor> Model::run_named(const std::map<std::string, at::Tensor>& inputs) const {
  return run(order_inputs(inputs));
}

std::vector<at::Tensor> Model::order_inputs(const std::map<std::string, at::Tensor>& inputs) const {
  const auto& specs = state_->manifest.inputs;
  std::vector<at::Tensor> ordered;
  std::vector<std::string> missing, unknown;
  std::set<std::string> known;
  for (const auto& spec : specs) {
    known.insert(spec.name);
    auto it = inputs.find(spec.name);
    if (it == inputs.end() && spec.optional) {
      ordered.emplace_back();  // left out: undefined
    } else if (it == inputs.end()) {
      missing.push_back(spec.name);
    } else {
      ordered.push_back(it->second);
    }
  }
  for (const auto& [name, tensor] : inputs) {
    if (!known.count(name)) unknown.push_back(name);
  }
  if (!missing.empty() || !unknown.empty()) {
    auto join = [](const std::vector<std::string>& names) {
      std::string s;
      for (const auto& n : names) s += (s.empty() ? "'" : ", '") + n + "'";
      return s;
    };
    std::string msg = "inputs by name do not match model '" + state_->manifest.name + "':";
    if (!missing.empty()) msg += " missing " + join(missing) + ";";
    if (!unknown.empty()) msg += " unknown " + join(unknown) + ";";
    std::vector<std::string> expected;
    for (const auto& spec : specs) expected.push_back(spec.name);
    msg += " expected " + join(expected);
    throw Error(ErrorKind::BadInput, msg);
  }
  return ordered;
}

Golden Model::golden() const {
  if (!state_->golden) {
    throw Error(ErrorKind::BadArtifact, "'" + state_->path + "' holds no golden examples");
  }
  // Copies: the caller may edit them, and selfcheck must keep comparing
  // against what was stored.
  Golden copy;
  for (const auto& t : state_->golden->inputs) copy.inputs.push_back(t.clone());
  for (const auto& t : state_->golden->outputs) copy.outputs.push_back(t.clone());
  return copy;
}

std::vector<at::Tensor> Model::example_inputs() const {
  std::vector<at::Tensor> inputs;
  if (state_->golden) {
    // Golden tensors are stored on the CPU; the model may live elsewhere.
    for (const auto& t : state_->golden->inputs) inputs.push_back(t.to(state_->device, /*non_blocking=*/false, /*copy=*/true));
    return inputs;
  }
  for (const auto& spec : state_->manifest.inputs) {
    if (!spec.dtype || !spec.shape) {
      throw Error(ErrorKind::BadOption,
                  "'" + state_->path + "' has no golden examples and no manifest shape for input '" +
                      spec.name + "'; pass inputs explicitly");
    }
    std::vector<int64_t> shape = *spec.shape;
    for (auto& d : shape) d = d < 0 ? 1 : d;
    auto options = at::TensorOptions().dtype(*spec.dtype).device(state_->device);
    inputs.push_back(at::isFloatingType(*spec.dtype) ? at::rand(shape, options)
                                                     : at::zeros(shape, options));
  }
  return inputs;
}

}  // namespace torchport
