// Tensor files: torch.save files in, torch.load-able files out.

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <atomic>
#include <chrono>

#include <torchport/io.h>

#include "detail.h"
#include "csv_input.h"
#include "image_input.h"
#include "npy.h"
#include "npz.h"
#include "reader.h"

namespace torchport {
namespace {

at::Tensor as_tensor(const c10::IValue& v, const std::string& where, const std::string& item) {
  if (!v.isTensor()) {
    throw Error(ErrorKind::BadInput,
                where + ": " + item + " is a " + v.tagKind() + ", expected a tensor");
  }
  detail::check_in_bounds(v.toTensor(), where + " " + item, ErrorKind::BadInput);
  return v.toTensor();
}

std::vector<at::Tensor> as_tensor_list(const c10::IValue& v, const std::string& where) {
  std::vector<at::Tensor> out;
  if (v.isTuple()) {
    const auto& elements = v.toTupleRef().elements();
    for (size_t i = 0; i < elements.size(); ++i) {
      out.push_back(as_tensor(elements[i], where, "item " + std::to_string(i)));
    }
  } else if (v.isList()) {
    auto list = v.toList();
    for (size_t i = 0; i < list.size(); ++i) {
      out.push_back(as_tensor(list.get(i), where, "item " + std::to_string(i)));
    }
  } else {
    throw Error(ErrorKind::BadInput, where + " holds a " + v.tagKind() + ", expected a list of tensors");
  }
  return out;
}

TensorBundle bundle_of(const std::string& path, const std::shared_ptr<const std::string>& bytes) {
  const std::string where = "input file '" + path + "'";
  TensorBundle bundle;
  if (detail::is_npy(*bytes)) {  // a NumPy array: the model's one (or first) input
    bundle.positional.push_back(detail::read_npy(*bytes, where));
    return bundle;
  }
  if (detail::is_npz(*bytes)) return detail::read_npz(*bytes, where);  // NumPy arrays, by position or by input name
  if (detail::is_image(*bytes)) {  // a PNG or JPEG picture: uint8 [1, H, W, 3] RGB, the model's first input
    bundle.positional.push_back(detail::read_image(*bytes, where));
    return bundle;
  }
  const c10::IValue value = detail::load_tensor_archive(*bytes, where, ErrorKind::BadInput);
  if (value.isTensor()) {
    bundle.positional.push_back(as_tensor(value, where, "the tensor"));
  } else if (value.isTuple() || value.isList()) {
    bundle.positional = as_tensor_list(value, where);
  } else if (value.isGenericDict()) {
    bundle.by_name = true;
    for (const auto& entry : value.toGenericDict()) {
      if (!entry.key().isString()) {
        throw Error(ErrorKind::BadInput, where + ": dict keys must be input names (strings), got a " +
                                             entry.key().tagKind());
      }
      const std::string name = entry.key().toStringRef();
      bundle.named[name] = as_tensor(entry.value(), where, "entry '" + name + "'");
    }
  } else {
    throw Error(ErrorKind::BadInput, where + " holds a " + value.tagKind() +
                                         "; expected a tensor, a list of tensors or a dict of "
                                         "tensors by input name");
  }
  return bundle;
}

// Every allocation on the input path: out of memory is the input's fault (too
// large for this machine), named, and the process stays usable.
template <typename Read>
TensorBundle reading(const std::string& path, Read read) {
  try {
    return read();
  } catch (const std::bad_alloc&) {
    throw Error(ErrorKind::BadInput, "input file '" + path + "' could not be read: out of memory");
  }
}

}  // namespace

TensorBundle read_tensor_file(const std::string& path) {
  // A missing input file is a bad input of the call, not a missing artifact.
  return reading(path, [&] { return bundle_of(path, detail::read_regular_file(path, "input file", ErrorKind::BadInput)); });
}

TensorBundle read_input_file(const std::string& path, const Manifest& manifest) {
  return reading(path, [&] {
    const auto bytes = detail::read_regular_file(path, "input file", ErrorKind::BadInput);
    if (!manifest.features.empty() && detail::looks_like_csv(*bytes)) {
      TensorBundle bundle;
      bundle.positional.push_back(detail::read_csv_rows(*bytes, manifest.features, "input file '" + path + "'"));
      return bundle;
    }
    return bundle_of(path, bytes);
  });
}

namespace {

std::string describe(const std::string& path) { return "output file '" + path + "'"; }

[[noreturn]] void write_failed(const std::string& path, const std::string& what) {
  throw Error(ErrorKind::Output, describe(path) + ": " + what + ": " + std::strerror(errno));
}

void write_all(int fd, const std::string& bytes, const std::string& path) {
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) write_failed(path, "write failed");
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) write_failed(path, "fsync failed");
}

std::string folder_of(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

// A fresh name in `folder` that no file has yet; short, so that any legal
// destination name works.
std::string temporary_name(const std::string& folder) {
  static std::atomic<uint64_t> counter{0};
  const uint64_t n = (static_cast<uint64_t>(::getpid()) << 32) ^ counter++ ^
                     static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  char name[40];
  std::snprintf(name, sizeof(name), ".torchport-%016llx", static_cast<unsigned long long>(n));
  return folder + "/" + name;
}

// Puts the finished file `from` at `path`: without replacing anything when
// `overwrite` is false (link() fails if `path` exists, even as a dangling
// symlink, so two racing writers cannot both win), else by rename().
void place(const std::string& from, const std::string& path, bool overwrite, bool follow) {
  // Again just before the rename: something may have appeared there while the bytes were written.
  if (overwrite) check_output_path(path, {});
  if (!overwrite) {
    const int rc = ::linkat(AT_FDCWD, from.c_str(), AT_FDCWD, path.c_str(), follow ? AT_SYMLINK_FOLLOW : 0);
    if (rc != 0 && errno == EEXIST) {
      throw Error(ErrorKind::BadOption, describe(path) + " already exists; replacing it was not asked for");
    }
    if (rc != 0) write_failed(path, "cannot be created");
    return;
  }
  if (follow) {  // from /proc/self/fd: link to a fresh name first, then rename over
    const std::string tmp = temporary_name(folder_of(path));
    if (::linkat(AT_FDCWD, from.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      write_failed(path, "cannot be created");
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      const int saved = errno;
      ::unlink(tmp.c_str());
      errno = saved;
      write_failed(path, "cannot replace the existing file");
    }
    return;
  }
  if (::rename(from.c_str(), path.c_str()) != 0) write_failed(path, "cannot replace the existing file");
}

}  // namespace

void check_output_path(const std::string& path, const std::vector<std::string>& protect) {
  struct stat out {};
  if (::stat(path.c_str(), &out) != 0) return;  // nothing there to lose
  for (const auto& other : protect) {
    struct stat in {};
    if (::stat(other.c_str(), &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino) {
      throw Error(ErrorKind::BadOption, describe(path) + " is '" + other +
                                            "', which this command reads; choose another output file");
    }
  }
  // Only a regular file is ever replaced: renaming over a device node, a FIFO or
  // a socket would swap a system object (as root, /dev/null) for a plain file.
  const char* kind = S_ISDIR(out.st_mode)    ? "a directory"
                     : S_ISCHR(out.st_mode)  ? "a character device"
                     : S_ISBLK(out.st_mode)  ? "a block device"
                     : S_ISFIFO(out.st_mode) ? "a FIFO (named pipe)"
                     : S_ISSOCK(out.st_mode) ? "a socket"
                     : S_ISREG(out.st_mode)  ? nullptr
                                             : "not a regular file";
  if (kind != nullptr) {
    throw Error(ErrorKind::BadOption, describe(path) + " is " + kind +
                                          "; torchport writes only regular files (expected a new path or a regular file)");
  }
}

void write_file(const std::string& path, const std::string& bytes, bool overwrite,
                const std::vector<std::string>& protect) {
  if (path.empty()) throw Error(ErrorKind::BadOption, "output file: the path is empty");
  check_output_path(path, protect);
  const std::string folder = folder_of(path);
  struct stat dir {};
  if (::stat(folder.c_str(), &dir) != 0 || !S_ISDIR(dir.st_mode)) {
    throw Error(ErrorKind::BadOption, describe(path) + ": folder '" + folder + "' does not exist");
  }
  // An unnamed file in the destination folder: a writer killed at any point
  // leaves nothing behind. It gets a name only once complete.
  int fd = ::open(folder.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
  if (fd >= 0) {
    const std::string proc = "/proc/self/fd/" + std::to_string(fd);
    try {
      write_all(fd, bytes, path);
      if (::access(proc.c_str(), F_OK) == 0) {
        place(proc, path, overwrite, /*follow=*/true);
        ::close(fd);
        return;
      }
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);  // no /proc to name it by: fall back to a named temporary
  }
  // Named temporary file (0666 less the umask, as open() would give).
  const std::string tmp = temporary_name(folder);
  fd = ::open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
  if (fd < 0) write_failed(path, "cannot be created");
  try {
    write_all(fd, bytes, path);
    ::close(fd);
    fd = -1;
    place(tmp, path, overwrite, /*follow=*/false);
    if (!overwrite) ::unlink(tmp.c_str());
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
}

void write_tensor_file(const std::string& path, const std::vector<at::Tensor>& tensors,
                       const std::vector<std::string>& protect) {
  c10::IValue value;
  if (tensors.size() == 1) {
    value = tensors[0].cpu();
  } else {
    std::vector<c10::IValue> items;
    for (const auto& t : tensors) items.emplace_back(t.cpu());
    value = c10::ivalue::Tuple::create(std::move(items));
  }
  const std::vector<char> bytes = torch::pickle_save(value);
  write_file(path, std::string(bytes.begin(), bytes.end()), /*overwrite=*/true, protect);
}

namespace {

// The outputs' structure with every tensor on the CPU and named tuples made
// plain: torch.load(weights_only=True) rebuilds tuples, lists and dicts, and
// no class of the model's.
c10::IValue loadable(const c10::IValue& v) {
  if (v.isTensor()) return v.toTensor().cpu();
  if (v.isTuple()) {
    std::vector<c10::IValue> items;
    for (const auto& e : v.toTupleRef().elements()) items.push_back(loadable(e));
    return c10::ivalue::Tuple::create(std::move(items));
  }
  if (v.isList()) {
    c10::impl::GenericList list(c10::AnyType::get());
    for (const auto& e : v.toListRef()) list.push_back(loadable(e));
    return list;
  }
  if (v.isGenericDict()) {
    c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
    for (const auto& e : v.toGenericDict()) dict.insert(e.key(), loadable(e.value()));
    return dict;
  }
  return v;
}

}  // namespace

void write_outputs_file(const std::string& path, const Outputs& outputs, const std::vector<std::string>& protect) {
  // torch::pickle_save tags dicts and lists with TorchScript types
  // (torch.jit._pickle.restore_type_tag), which weights_only refuses; the
  // same archive without the tags is what torch.save writes.
  std::vector<char> pickled;
  torch::jit::Pickler pickler([&](const char* buf, size_t n) { pickled.insert(pickled.end(), buf, buf + n); },
                              nullptr, nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(loadable(outputs.structure));
  pickler.stop();
  std::string bytes;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
    bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  torch::jit::writeArchiveAndTensors("data", pickled.data(), pickled.size(), pickler.tensorData(), writer);
  writer.writeEndOfFile();
  write_file(path, bytes, /*overwrite=*/true, protect);
}

std::vector<at::Tensor> read_outputs_file(const std::string& path) {
  const std::string where = "output file '" + path + "'";
  const auto bytes = detail::read_regular_file(path, "output file", ErrorKind::BadInput);
  const c10::IValue value = detail::load_tensor_archive(*bytes, where, ErrorKind::BadInput);
  std::vector<at::Tensor> tensors;
  try {
    tensors = detail::flatten_output(value);
  } catch (const Error& e) {
    throw Error(ErrorKind::BadInput, where + ": " + e.what());
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    detail::check_in_bounds(tensors[i], where + " tensor " + std::to_string(i), ErrorKind::BadInput);
  }
  return tensors;
}

std::vector<at::Tensor> positional_inputs(const Model& model, const TensorBundle& inputs) {
  return inputs.by_name ? model.order_inputs(inputs.named) : inputs.positional;
}

std::vector<at::Tensor> run(const Model& model, const TensorBundle& inputs) {
  return model.run(positional_inputs(model, inputs));
}

namespace detail {

Golden parse_golden(const std::string& bytes, const std::string& where) {
  const c10::IValue value = load_tensor_archive(bytes, where, ErrorKind::BadArtifact);
  if (!value.isGenericDict()) {
    throw Error(ErrorKind::BadArtifact, where + " must hold a dict {inputs, outputs}");
  }
  Golden golden;
  const auto dict = value.toGenericDict();
  for (const char* key : {"inputs", "outputs"}) {
    if (!dict.contains(key)) throw Error(ErrorKind::BadArtifact, where + " has no '" + key + "'");
    std::vector<at::Tensor> tensors;
    try {
      tensors = as_tensor_list(dict.at(key), where + " '" + key + "'");
    } catch (const Error& e) {
      throw Error(ErrorKind::BadArtifact, e.what());
    }
    (std::string(key) == "inputs" ? golden.inputs : golden.outputs) = std::move(tensors);
  }
  return golden;
}

}  // namespace detail
}  // namespace torchport
