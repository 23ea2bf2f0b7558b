#pragma once
// Custom operator libraries (TORCH_LIBRARY), loaded before a model that calls
// their operators.

#include <string>
#include <vector>

namespace torchport::detail {

/// dlopen()s each library with RTLD_NOW | RTLD_GLOBAL, in order; BadOption
/// naming the library and dlerror()'s reason when one cannot be loaded.
/// Loaded libraries stay for the life of the process: their operators are
/// registered process-wide and a model may be loaded again.
void load_libraries(const std::vector<std::string>& paths);

}  // namespace torchport::detail
