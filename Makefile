# Everything a fresh clone needs: `make demo` and `make test` set up the
# virtual environment, LibTorch (inside the torch wheel), the build, and run.

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
TORCH       := torch==2.13.0
# Persistent build folder, shared by `make demo` and `make test`: the demo
# configures it without the C++ tests and ExecuTorch, a later `make test` turns
# both on and builds only what they add (the runtime's objects are reused).
BUILD_DIR   := build/make
BUILD_LOG   := build/make.log
# ExecuTorch's CMake config (the .pte backend, `make test` only) wants
# CMake >= 3.28; when the system's is older, pip brings one into the venv.
CMAKE_DEP   := $(shell v=$$(cmake --version 2>/dev/null | sed -n 's/^cmake version //p'); \
                 [ -n "$$v" ] && [ "$$(printf '%s\n' 3.28 "$$v" | sort -V | head -1)" = 3.28 ] || echo "'cmake>=3.28'")
# The core (torch, numpy), the build tools, and what the demo trains with.
DEMO_DEPS   := $(TORCH) numpy pybind11 scikit-build-core nlohmann-json ninja scikit-learn
# Everything the suite exercises: pyproject's `test` extra plus ExecuTorch,
# transformers (tests/test_real_world.py) and a CMake that can read ExecuTorch's config.
TEST_DEPS   := $(DEMO_DEPS) pytest pytest-xdist hypothesis tqdm matplotlib pillow tensorboard nbformat nbclient \
               ipykernel "tritonclient[grpc,http]" onnx onnxscript onnxruntime transformers==5.23.0 \
               executorch==1.5.1 $(CMAKE_DEP)
SOURCES     := CMakeLists.txt pyproject.toml $(shell find cpp python examples/image_app -type f -not -path '*/__pycache__/*' 2>/dev/null)
# Stamps: what was installed into .venv and how torchport was built there.
DEMO_DEPS_OK := $(VENV)/.deps-demo
TEST_DEPS_OK := $(VENV)/.deps-test
DEMO_BUILT  := $(VENV)/.torchport-demo
INSTALLED   := $(VENV)/.torchport-installed
# pip's build output goes to $(BUILD_LOG); the screen gets ninja's [n/N] lines.
SHELL       := /bin/bash
PIP_BUILD    = set -o pipefail; mkdir -p build; \
  $(PY) -m pip install -v --no-build-isolation -Cbuild-dir=$(BUILD_DIR) $(1) . 2>&1 | tee $(BUILD_LOG) \
    | { grep --line-buffered -E '^ *\[[0-9]+/[0-9]+\] ' || true; } \
  || { echo "build failed; the last lines of $(BUILD_LOG):"; tail -40 $(BUILD_LOG); exit 1; }

SAN_DIR     := build/sanitize

.PHONY: help setup demo test test-cpp test-python bench zoo soak sanitize clean distclean
.DEFAULT_GOAL := help

help:
	@echo "make demo    .venv with torch, numpy, scikit-learn; build the runtime (no C++ tests, no ExecuTorch);"
	@echo "             train + export + run the digits CNN in C++"
	@echo "make test    add the test extras, the C++ tests and ExecuTorch; run ctest and pytest -n 2"
	@echo "make setup   the full build and install make test uses (build/make)"
	@echo "make bench   latency figures (benchmarks/)"
	@echo "make zoo     train every model family, export, check parity (benchmarks/train_zoo.py, ~5 min)"
	@echo "make allocator  glibc, tuned glibc and jemalloc on large activations (benchmarks/allocator.py)"
	@echo "make soak    10,000 calls with varying batch sizes; fails if memory grows 5% or more"
	@echo "make sanitize  C++ tests under AddressSanitizer + UndefinedBehaviorSanitizer (own build folder)"
	@echo "make clean   remove the build folder; distclean also removes .venv"

$(PY):
	@echo "==> creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)

$(DEMO_DEPS_OK): Makefile | $(PY)
	@echo "==> [1/3] installing the core and the demo's needs into $(VENV): $(DEMO_DEPS)"
	$(PY) -m pip install -q $(DEMO_DEPS)
	@touch $@

$(TEST_DEPS_OK): Makefile | $(PY)
	@echo "==> installing the test dependencies into $(VENV) (ExecuTorch, ONNX, Triton client, transformers, ...)"
	$(PY) -m pip install -q $(TEST_DEPS)
	@touch $@ $(DEMO_DEPS_OK)

# GoogleTest for the C++ suite, CLI11 for torchport-run's arguments, xxHash
# (the payload checksum), stb_image (PNG/JPEG inputs) and zlib (.npz inputs),
# from Debian when they are missing.
.PHONY: gtest
gtest:
	@missing=; \
	[ -f /usr/include/gtest/gtest.h ] || missing="$$missing libgtest-dev"; \
	[ -f /usr/include/CLI/CLI.hpp ] || missing="$$missing libcli11-dev"; \
	[ -f /usr/include/xxhash.h ] || missing="$$missing libxxhash-dev"; \
	[ -f /usr/include/stb/stb_image.h ] || missing="$$missing libstb-dev"; \
	[ -f /usr/include/zlib.h ] || missing="$$missing zlib1g-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# The full build: runtime, ExecuTorch plugin, binary, module, C++ tests.
$(INSTALLED): $(TEST_DEPS_OK) $(SOURCES) | gtest
	@command -v cmake >/dev/null || { echo "cmake is missing: apt-get install cmake"; exit 1; }
	@echo "==> building torchport with its C++ tests and ExecuTorch (log: $(BUILD_LOG))"
	@$(call PIP_BUILD,-Ccmake.define.TORCHPORT_BUILD_TESTS=ON -Ccmake.define.TORCHPORT_WITH_EXECUTORCH=ON)
	@touch $@ $(DEMO_BUILT)

# What the demo runs: runtime, binary, module; no gtest targets, no ExecuTorch.
$(DEMO_BUILT): $(DEMO_DEPS_OK) $(SOURCES) | gtest
	@command -v cmake >/dev/null || { echo "cmake is missing: apt-get install cmake"; exit 1; }
	@echo "==> [2/3] building the C++ runtime, torchport-run and the Python module (log: $(BUILD_LOG))"
	@$(call PIP_BUILD,-Ccmake.define.TORCHPORT_BUILD_TESTS=OFF -Ccmake.define.TORCHPORT_WITH_EXECUTORCH=OFF)
	@touch $@

setup: $(INSTALLED)

# A full build already made (make test) serves the demo as it is.
demo: $(if $(wildcard $(INSTALLED)),$(INSTALLED),$(DEMO_BUILT))
	@echo "==> [3/3] training, exporting and running the digits CNN"
	$(VENV)/bin/torchport demo

test-cpp: setup
	PATH=$(abspath $(VENV))/bin:$$PATH ctest --test-dir $(BUILD_DIR) --output-on-failure -j 2

test-python: setup
	$(PY) -m pytest -n 2 --dist loadfile

test: test-cpp test-python

bench: setup
	$(PY) benchmarks/latency.py

zoo: setup
	$(PY) benchmarks/train_zoo.py --table benchmarks/results/train_zoo.md

soak: setup
	$(PY) benchmarks/soak.py

# glibc against jemalloc on large activations; jemalloc from Debian when missing.
.PHONY: allocator
allocator: setup
	@[ -f /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ] || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libjemalloc2 >/dev/null; }
	$(PY) benchmarks/allocator.py

# The runtime and its C++ tests built with -fsanitize=address,undefined; LibTorch
# stays as shipped (uninstrumented). See docs/reliability.md.
sanitize: $(TEST_DEPS_OK) | gtest
	cmake -S . -B $(SAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DTORCHPORT_SANITIZE=ON -DTORCHPORT_BUILD_TESTS=ON -DTORCHPORT_BUILD_PYTHON=OFF \
	  -DPython_EXECUTABLE=$(abspath $(PY))
	cmake --build $(SAN_DIR)
	ASAN_OPTIONS=detect_leaks=1:strict_init_order=1 \
	LSAN_OPTIONS=suppressions=$(abspath cpp/tests/lsan.supp):print_suppressions=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	TORCHPORT_INPUT_CORPUS=$(abspath build/image-corpus) \
	  ctest --test-dir $(SAN_DIR) --output-on-failure -j 2

clean:
	rm -rf build runs

distclean: clean
	rm -rf $(VENV)
