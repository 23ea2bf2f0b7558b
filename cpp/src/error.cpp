#include <torchport/torchport.h>

namespace torchport {

const char* version() { return TORCHPORT_VERSION; }
const char* torch_version() { return TORCHPORT_TORCH_VERSION; }

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::NotFound: return "not_found";
    case ErrorKind::BadArtifact: return "bad_artifact";
    case ErrorKind::BadInput: return "bad_input";
    case ErrorKind::BadOption: return "bad_option";
    case ErrorKind::Runtime: return "runtime";
  }
  return "unknown";
}

Error::Error(ErrorKind kind, const std::string& message)
    : std::runtime_error(message), kind_(kind) {}

}  // namespace torchport
