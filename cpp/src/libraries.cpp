#include "libraries.h"

#include <filesystem>

#include <dlfcn.h>

#include <torchport/torchport.h>

namespace torchport::detail {

void load_libraries(const std::vector<std::string>& paths) {
  for (const auto& path : paths) {
    std::error_code ec;
    if (path.empty()) {
      throw Error(ErrorKind::BadOption, "libraries: expected the path of a shared library, got an empty string");
    }
    // dlopen() searches the library path for a bare name; a path with a slash
    // must name an existing regular file, which is the clearer message.
    if (path.find('/') != std::string::npos && !std::filesystem::is_regular_file(path, ec)) {
      throw Error(ErrorKind::BadOption, "library '" + path + "': expected a shared library file, " +
                                            (std::filesystem::exists(path, ec) ? "got something else"
                                                                               : "it does not exist"));
    }
    dlerror();  // clear any earlier message
    if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      const char* reason = dlerror();
      throw Error(ErrorKind::BadOption, "library '" + path + "' cannot be loaded: " +
                                            (reason ? reason : "dlopen failed without a reason"));
    }
  }
}

}  // namespace torchport::detail
