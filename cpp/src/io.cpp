// Tensor files: torch.save files in, torch.load-able files out.

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <sys/stat.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <torchport/io.h>

#include "detail.h"

namespace torchport {
namespace {

std::vector<char> read_bytes(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // A missing input file is a bad input of the call, not a missing artifact.
  if (!fs::exists(path, ec)) throw Error(ErrorKind::BadInput, "input file '" + path + "' does not exist");
  if (fs::is_directory(path, ec)) {
    throw Error(ErrorKind::BadInput, "input file '" + path + "' is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::BadInput, "input file '" + path + "' cannot be opened");
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

c10::IValue unpickle(const std::vector<char>& bytes, const std::string& where) {
  if (bytes.empty()) throw Error(ErrorKind::BadInput, where + " is empty");
  try {
    // The TorchScript unpickler only builds tensors and plain containers; it
    // cannot import or call arbitrary Python, unlike pickle.load.
    return torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::BadInput,
                where + " is not a tensor file written by torch.save: " + detail::brief(e));
  }
}

at::Tensor as_tensor(const c10::IValue& v, const std::string& where, const std::string& item) {
  if (!v.isTensor()) {
    throw Error(ErrorKind::BadInput,
                where + ": " + item + " is a " + v.tagKind() + ", expected a tensor");
  }
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

}  // namespace

TensorBundle read_tensor_file(const std::string& path) {
  const std::string where = "input file '" + path + "'";
  const c10::IValue value = unpickle(read_bytes(path), where);
  TensorBundle bundle;
  if (value.isTensor()) {
    bundle.positional.push_back(value.toTensor());
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

void write_tensor_file(const std::string& path, const std::vector<at::Tensor>& tensors) {
  c10::IValue value;
  if (tensors.size() == 1) {
    value = tensors[0].cpu();
  } else {
    std::vector<c10::IValue> items;
    for (const auto& t : tensors) items.emplace_back(t.cpu());
    value = c10::ivalue::Tuple::create(std::move(items));
  }
  const std::vector<char> bytes = torch::pickle_save(value);
  // Written beside the destination under a unique name, flushed to disk, then
  // renamed over it: a reader, or a crash at any point, sees the old file or
  // the whole new one, never a part (as torchport's Python side writes files).
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    throw Error(ErrorKind::BadOption,
                "output file '" + path + "' cannot be written: " + std::strerror(errno));
  }
  // mkstemp creates the file private (0600); give it what a plain open() would.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  auto fail = [&](const std::string& what) {
    ::close(fd);
    std::remove(tmp.c_str());
    throw Error(ErrorKind::BadOption, "output file '" + path + "': " + what);
  };
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(std::string("write failed: ") + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) fail(std::string("fsync failed: ") + std::strerror(errno));
  ::close(fd);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw Error(ErrorKind::BadOption, "output file '" + path + "': " + ec.message());
  }
}

std::vector<at::Tensor> positional_inputs(const Model& model, const TensorBundle& inputs) {
  return inputs.by_name ? model.order_inputs(inputs.named) : inputs.positional;
}

std::vector<at::Tensor> run(const Model& model, const TensorBundle& inputs) {
  return model.run(positional_inputs(model, inputs));
}

namespace detail {

Golden parse_golden(const std::string& bytes, const std::string& where) {
  c10::IValue value;
  try {
    value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const std::exception& e) {
    throw Error(ErrorKind::BadArtifact, where + " cannot be read: " + brief(e));
  }
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
