"""The registry of runtimes (torchport.runtimes): which runtime reads which
format, what a missing one says, and the one torchport-run command line."""

from __future__ import annotations

import re
import sys

import pytest
import torch

import torchport
from torchport.bench import bench
from torchport.errors import BadOptionError, NativeUnavailableError
from torchport.native import binary_path
from torchport.runtimes import REGISTRY, binary_command, python_runtime, readers

from conftest import MLP


def test_every_format_is_read_by_its_python_runtime_and_the_cpp_runtime():
    from torchport import formats

    for fmt in formats.REGISTRY:  # every format export writes
        assert readers(fmt) == (python_runtime(fmt), "native", "binary")
        assert REGISTRY[python_runtime(fmt)].formats == (fmt,)
    assert REGISTRY["eager"].formats == ()


@pytest.mark.parametrize("runtime, module, extra", [("onnxruntime", "onnxruntime", "onnx"),
                                                    ("executorch", "executorch.runtime", "executorch")])
def test_a_runtime_whose_package_is_missing_names_the_fix(monkeypatch, tmp_path, runtime, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(NativeUnavailableError, match=re.escape(f"pip install 'torchport[{extra}]'")):
        REGISTRY[runtime].load(tmp_path / "m.file")


def test_bench_skips_a_contender_whose_runtime_is_not_installed(monkeypatch, tmp_path):
    torch.manual_seed(0)
    path = torchport.export(MLP().eval(), torch.randn(3, 6), tmp_path / "m.pt")
    (tmp_path / "m.onnx").write_bytes(b"not read: the runtime is missing first")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    report = bench(path, batches=[2], runtimes=["native", "onnxruntime"], iters=2, rounds=1)
    assert [r.runtime for r in report.rows] == ["native"]
    assert "pip install 'torchport[onnx]'" in report.skipped["onnxruntime"], report.skipped


def test_eager_needs_the_model():
    with pytest.raises(BadOptionError, match="runtime 'eager': expected the eager model"):
        REGISTRY["eager"].load(None)


def test_the_binary_command_line_puts_the_runtime_options_before_the_commands_own():
    cmd = binary_command("submodule", "m.pt", threads=2, device="cpu", libraries=["ops.so"],
                         args=["--name", "fc", "--input", "in.pt", "--output", "out.pt"])
    assert cmd == [str(binary_path()), "submodule", "m.pt", "--threads", "2", "--device", "cpu",
                   "--load-library", "ops.so", "--name", "fc", "--input", "in.pt", "--output", "out.pt"]
    assert binary_command("predict", "m.pt") == [str(binary_path()), "predict", "m.pt"]  # none: the binary's defaults


def test_the_binary_and_the_binding_give_the_same_bytes(tmp_path):
    torch.manual_seed(0)
    path = torchport.export(MLP().eval(), torch.randn(3, 6), tmp_path / "m.pt")
    inputs, expected = torchport.read_golden(path)
    for name in ("native", "binary", "torchscript"):
        (got,) = REGISTRY[name].load(path, threads=1).run(inputs)
        assert torch.equal(got, expected[0]), name
