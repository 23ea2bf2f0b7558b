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
    case ErrorKind::Export: return "export";
    case ErrorKind::Data: return "data";
    case ErrorKind::Checkpoint: return "checkpoint";
    case ErrorKind::Output: return "output";
    case ErrorKind::Unavailable: return "unavailable";
  }
  return "unknown";
}

const std::vector<ErrorKind>& error_kinds() {
  static const std::vector<ErrorKind> kinds = {
      ErrorKind::BadOption, ErrorKind::NotFound, ErrorKind::BadArtifact, ErrorKind::BadInput,
      ErrorKind::Runtime,   ErrorKind::Export,   ErrorKind::Data,        ErrorKind::Checkpoint,
      ErrorKind::Output,    ErrorKind::Unavailable};
  return kinds;
}

int exit_code(ErrorKind kind) {
  // 0 is success and 1 a mismatch (kExitMismatch); the rest, one per kind.
  switch (kind) {
    case ErrorKind::BadOption: return kExitUsage;
    case ErrorKind::NotFound:
    case ErrorKind::BadArtifact: return 3;
    case ErrorKind::BadInput: return 4;
    case ErrorKind::Runtime: return 5;
    case ErrorKind::Export: return 6;
    case ErrorKind::Data: return 7;
    case ErrorKind::Checkpoint: return 8;
    case ErrorKind::Output: return 9;
    case ErrorKind::Unavailable: return 10;
  }
  return 5;
}

Error::Error(ErrorKind kind, const std::string& message)
    : std::runtime_error(message), kind_(kind) {}

}  // namespace torchport
