"""A feature used without its pyproject extra is a clear error naming the
`pip install 'torchport[...]'` that brings it (each optional package is hidden
here as if it were not installed)."""

from __future__ import annotations

import re
import sys

import pytest
import torch

import torchport
from conftest import MLP
from torchport.bench import BenchReport
from torchport.errors import BadOptionError, NativeUnavailableError


def _hide(monkeypatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError


@pytest.mark.parametrize("hidden", ["onnx", "onnxscript"])
def test_onnx_export_names_the_onnx_extra(monkeypatch, tmp_path, hidden):
    _hide(monkeypatch, hidden)
    with pytest.raises(BadOptionError, match=re.escape("pip install 'torchport[onnx]'")):
        torchport.export(MLP().eval(), torch.randn(2, 6), tmp_path / "m.onnx", format="onnx")
    assert not list(tmp_path.iterdir())


def test_onnxruntime_names_the_onnx_extra(monkeypatch):
    from torchport.formats import onnxruntime_session

    _hide(monkeypatch, "onnxruntime")
    with pytest.raises(NativeUnavailableError, match=re.escape("pip install 'torchport[onnx]'")):
        onnxruntime_session(b"")


def test_executorch_export_and_python_runtime_name_the_executorch_extra(monkeypatch, tmp_path):
    from torchport.formats import run_executorch_python

    _hide(monkeypatch, "executorch", "executorch.exir", "executorch.runtime")
    with pytest.raises(BadOptionError, match=re.escape("pip install 'torchport[executorch]'")):
        torchport.export(MLP().eval(), torch.randn(2, 6), tmp_path / "m.pte", format="executorch")
    with pytest.raises(NativeUnavailableError, match=re.escape("pip install 'torchport[executorch]'")):
        run_executorch_python(tmp_path / "m.pte", [torch.randn(2, 6)])


def test_the_sklearn_datasets_name_the_train_extra(monkeypatch):
    from torchport.data import load_dataset

    _hide(monkeypatch, "sklearn", "sklearn.datasets")
    with pytest.raises(BadOptionError, match=re.escape("pip install 'torchport[train]'")):
        load_dataset("digits")


def test_a_plot_without_matplotlib_names_the_train_extra(monkeypatch, tmp_path):
    _hide(monkeypatch, "matplotlib", "matplotlib.pyplot")
    report = BenchReport.__new__(BenchReport)  # plot() imports matplotlib before reading the report
    with pytest.raises(BadOptionError, match=re.escape("pip install 'torchport[train]'")):
        report.plot(tmp_path / "b.png")
    assert not (tmp_path / "b.png").exists()
