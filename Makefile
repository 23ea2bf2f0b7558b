# Everything a fresh clone needs: `make demo` and `make test` set up the
# virtual environment, LibTorch (inside the torch wheel), the build, and run.

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
TORCH       := torch==2.13.0
# Persistent build folder, so a second `make test` rebuilds only what changed.
BUILD_DIR   := build/make
# ExecuTorch's CMake config (the .pte backend) wants CMake >= 3.28; when the
# system's is older, pip brings one into the venv, which the build then uses.
CMAKE_DEP   := $(shell v=$$(cmake --version 2>/dev/null | sed -n 's/^cmake version //p'); \
                 [ -n "$$v" ] && [ "$$(printf '%s\n' 3.28 "$$v" | sort -V | head -1)" = 3.28 ] || echo "'cmake>=3.28'")
DEPS        := $(TORCH) numpy pybind11 scikit-build-core nlohmann-json ninja scikit-learn pytest hypothesis \
               tqdm matplotlib pillow tensorboard nbformat nbclient ipykernel "tritonclient[grpc,http]" \
               onnx onnxscript onnxruntime transformers==5.23.0 executorch==1.5.1 $(CMAKE_DEP)
SOURCES     := CMakeLists.txt pyproject.toml $(shell find cpp python examples/image_app -type f -not -path '*/__pycache__/*' 2>/dev/null)
INSTALLED   := $(VENV)/.torchport-installed

SAN_DIR     := build/sanitize

.PHONY: help setup demo test test-cpp test-python bench zoo soak sanitize clean distclean
.DEFAULT_GOAL := help

help:
	@echo "make demo    set up .venv, build torchport, train + export + run the digits CNN in C++"
	@echo "make test    set up, then run the C++ tests (ctest) and the Python suite (pytest)"
	@echo "make bench   latency figures (benchmarks/)"
	@echo "make zoo     train every model family, export, check parity (benchmarks/train_zoo.py, ~5 min)"
	@echo "make allocator  glibc, tuned glibc and jemalloc on large activations (benchmarks/allocator.py)"
	@echo "make soak    10,000 calls with varying batch sizes; fails if memory grows 5% or more"
	@echo "make sanitize  C++ tests under AddressSanitizer + UndefinedBehaviorSanitizer (own build folder)"
	@echo "make clean   remove the build folder; distclean also removes .venv"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps: Makefile | $(PY)
	$(PY) -m pip install -q $(DEPS)
	@touch $@

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

$(INSTALLED): $(VENV)/.deps $(SOURCES) | gtest
	@command -v cmake >/dev/null || { echo "cmake is missing: apt-get install cmake"; exit 1; }
	$(PY) -m pip install -q --no-build-isolation \
	  -Cbuild-dir=$(BUILD_DIR) -Ccmake.define.TORCHPORT_BUILD_TESTS=ON .
	@touch $@

setup: $(INSTALLED)

demo: setup
	$(VENV)/bin/torchport demo

test-cpp: setup
	PATH=$(abspath $(VENV))/bin:$$PATH ctest --test-dir $(BUILD_DIR) --output-on-failure -j 2

test-python: setup
	$(PY) -m pytest

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
sanitize: $(VENV)/.deps | gtest
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
