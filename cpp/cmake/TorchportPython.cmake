# Ties the build to one Python interpreter: the torch it has installed is the
# LibTorch we compile against, so the extension, the binary and the wheel all
# agree with the torch they will run beside.
if(TORCHPORT_BUILD_PYTHON)
  find_package(Python 3.9 COMPONENTS Interpreter Development.Module REQUIRED)
else()
  find_package(Python 3.9 COMPONENTS Interpreter REQUIRED)
endif()

execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
    "import os, torch; print(torch.__version__); print(os.path.join(torch.utils.cmake_prefix_path, 'Torch'))"
  OUTPUT_VARIABLE _tp_torch_out
  RESULT_VARIABLE _tp_torch_rc
  ERROR_VARIABLE _tp_torch_err
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _tp_torch_rc EQUAL 0)
  message(FATAL_ERROR
    "torchport: ${Python_EXECUTABLE} cannot import torch:\n${_tp_torch_err}\n"
    "Install it first (pip install torch==2.13.0) and build with --no-build-isolation, "
    "so the extension is compiled against the torch it will run with.")
endif()
string(REPLACE "\n" ";" _tp_torch_out "${_tp_torch_out}")
list(GET _tp_torch_out 0 TORCHPORT_TORCH_VERSION)
list(GET _tp_torch_out 1 _tp_torch_dir)
# Pinned from the interpreter when building the wheel: a Torch_DIR from the
# environment or an older cache must not pick up another LibTorch than the one
# the wheel will run with. A plain CMake build may name its own Torch_DIR.
if(SKBUILD OR NOT Torch_DIR)
  set(Torch_DIR "${_tp_torch_dir}" CACHE PATH "LibTorch CMake config of the build interpreter's torch" FORCE)
endif()
message(STATUS "  Python ${Python_EXECUTABLE} (torch ${TORCHPORT_TORCH_VERSION})")

# nlohmann_json: a system package when there is one, else the headers that the
# PyPI package nlohmann-json ships.
find_package(nlohmann_json 3.10 CONFIG QUIET)
if(NOT nlohmann_json_FOUND)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
      "import os, nlohmann_json; print(os.path.join(os.path.dirname(nlohmann_json.__file__), 'include'))"
    OUTPUT_VARIABLE _tp_json_inc
    RESULT_VARIABLE _tp_json_rc
    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT _tp_json_rc EQUAL 0 OR NOT EXISTS "${_tp_json_inc}/nlohmann/json.hpp")
    message(FATAL_ERROR
      "torchport: nlohmann_json not found. Install it with 'pip install nlohmann-json' "
      "(or 'apt-get install nlohmann-json3-dev').")
  endif()
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_tp_json_inc}")
  message(STATUS "  nlohmann_json headers from ${_tp_json_inc}")
endif()

# xxHash (XXH3-128, the payload checksum), used header-only: nothing to ship.
find_path(TORCHPORT_XXHASH_INCLUDE_DIR xxhash.h)
if(NOT TORCHPORT_XXHASH_INCLUDE_DIR)
  message(FATAL_ERROR
    "torchport: xxhash.h not found. Install it with 'apt-get install libxxhash-dev' "
    "(or pass -DTORCHPORT_XXHASH_INCLUDE_DIR=<folder holding xxhash.h>).")
endif()
add_library(torchport_xxhash INTERFACE IMPORTED)
set_target_properties(torchport_xxhash PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${TORCHPORT_XXHASH_INCLUDE_DIR}")
message(STATUS "  xxhash.h from ${TORCHPORT_XXHASH_INCLUDE_DIR}")

# Install layout. Inside a wheel everything C++ lives under the package folder
# (torchport/lib, torchport/include, torchport/share/cmake) and the binary goes
# to the scripts folder; relative rpaths then find libtorch inside the torch
# wheel next to ours, with no LD_LIBRARY_PATH.
if(SKBUILD)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
      "import os, sysconfig; print(os.path.relpath(sysconfig.get_path('platlib'), sysconfig.get_path('scripts')))"
    OUTPUT_VARIABLE _tp_scripts_to_platlib
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  set(TORCHPORT_INSTALL_PKGDIR "torchport")
  set(TORCHPORT_INSTALL_LIBDIR "torchport/lib")
  set(TORCHPORT_INSTALL_INCLUDEDIR "torchport/include")
  set(TORCHPORT_INSTALL_CMAKEDIR "torchport/share/cmake/torchport")
  set(TORCHPORT_INSTALL_BINDIR "${SKBUILD_SCRIPTS_DIR}")
  set(TORCHPORT_RUNTIME_RPATH "$ORIGIN/../../torch/lib")
  # The ExecuTorch plugin (torchport/lib) finds the executorch wheel's libraries.
  set(TORCHPORT_EXECUTORCH_RPATH "$ORIGIN/../../executorch/lib")
  set(TORCHPORT_NATIVE_RPATH "$ORIGIN/lib;$ORIGIN/../torch/lib")
  set(TORCHPORT_CLI_RPATH
    "$ORIGIN/${_tp_scripts_to_platlib}/torchport/lib;$ORIGIN/${_tp_scripts_to_platlib}/torch/lib")
else()
  include(GNUInstallDirs)
  get_filename_component(_tp_torch_lib "${_tp_torch_dir}/../../../lib" ABSOLUTE)
  set(TORCHPORT_INSTALL_PKGDIR "${CMAKE_INSTALL_LIBDIR}/torchport")
  set(TORCHPORT_INSTALL_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
  set(TORCHPORT_INSTALL_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
  set(TORCHPORT_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/torchport")
  set(TORCHPORT_INSTALL_BINDIR "${CMAKE_INSTALL_BINDIR}")
  set(TORCHPORT_RUNTIME_RPATH "${_tp_torch_lib}")
  set(TORCHPORT_NATIVE_RPATH "$ORIGIN/..;${_tp_torch_lib}")
  set(TORCHPORT_CLI_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR};${_tp_torch_lib}")
endif()
