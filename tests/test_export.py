"""torchport.export and the artifact it writes."""

from __future__ import annotations

import json
import os
import stat
import warnings
import zipfile
from typing import Optional

import pytest
import torch
from torch import nn

import torchport
from conftest import MLP, TwoInTwoOut, run_binary


def test_manifest_holds_the_contract(tmp_path):
    model = TwoInTwoOut()
    model.train()
    path = torchport.export(
        model,
        (torch.randn(2, 5), torch.randn(2, 3)),
        tmp_path / "two.pt",
        output_names=["total", "probs"],
        metadata={"labels": ["x"], "normalisation": {"mean": 0.5, "std": 2.0}},
    )
    assert not model.training, "export puts the model in eval mode"
    m = torchport.read_manifest(path)
    assert m.schema == 2
    assert m.name == "TwoInTwoOut"
    assert m.export_method == "script"
    assert m.torch_version == torch.__version__
    assert m.torchport_version == torchport.__version__
    assert m.created.endswith("Z")
    assert [(s.name, s.dtype, s.shape) for s in m.inputs] == [("left", "float32", ("batch", 5)), ("right", "float32", ("batch", 3))]
    assert [(s.name, s.dtype, s.shape) for s in m.outputs] == [("total", "float32", ("batch",)), ("probs", "float32", ("batch", 8))]
    assert m.metadata["normalisation"] == {"mean": 0.5, "std": 2.0}
    assert m.golden


def test_artifact_is_a_plain_torchscript_archive(tmp_path):
    path = torchport.export(MLP(), torch.randn(2, 6), tmp_path / "m.pt")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    assert any(n.endswith("/extra/torchport/manifest.json") for n in names)
    assert any(n.endswith("/extra/torchport/golden.pt") for n in names)
    extra = {"torchport/manifest.json": ""}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        module = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["torchport/manifest.json"])["schema"] == 2
    assert module(torch.randn(4, 6)).shape == (4, 3)


def test_golden_outputs_are_the_eager_outputs(tmp_path):
    torch.manual_seed(0)
    model = MLP().eval()
    x = torch.randn(3, 6)
    path = torchport.export(model, x, tmp_path / "m.pt")
    inputs, outputs = torchport.read_golden(path)
    assert torch.equal(inputs[0], x)
    with torch.inference_mode():
        assert torch.equal(outputs[0], model(x))


class DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Not scriptable: a Python-side numpy conversion.
        scale = float(x.detach().numpy().std()) + 1.0
        return x * scale


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_auto_falls_back_to_trace_and_says_why(tmp_path):
    with pytest.warns(torchport.ExportWarning, match="torch.jit.script failed.*torch.jit.trace"):
        path = torchport.export(DataDependent(), torch.randn(2, 3), tmp_path / "traced.pt")
    assert torchport.read_manifest(path).export_method == "trace"
    assert torchport.verify(path).bit_exact


def test_script_method_does_not_fall_back(tmp_path):
    with pytest.raises(torchport.ExportError, match="torch.jit.script failed"):
        torchport.export(DataDependent(), torch.randn(2, 3), tmp_path / "s.pt", method="script")
    assert not (tmp_path / "s.pt").exists()


def test_export_leaves_no_temporary_files(tmp_path):
    torchport.export(MLP(), torch.randn(2, 6), tmp_path / "m.pt")
    torchport.export(MLP(), torch.randn(2, 6), tmp_path / "m.pt", overwrite=True)  # replaces atomically
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_static_shapes_when_asked(tmp_path):
    path = torchport.export(MLP(), torch.randn(2, 6), tmp_path / "m.pt", dynamic_dims={})
    m = torchport.read_manifest(path)
    assert m.inputs[0].shape == (2, 6) and m.outputs[0].shape == (2, 3)
    with pytest.raises(torchport.BadInputError, match=r"input 'x': dim 0 expected 2, got 4"):
        torchport.NativeModel(path).run(torch.randn(4, 6))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "compile"}, "method: expected one of"),
        ({"input_names": ["a", "b"]}, "input_names: expected 1 names, got 2"),
        ({"output_names": ["y", "y2"]}, "output_names: expected 1 names"),
        ({"dynamic_dims": {"nope": [0]}}, r"dynamic_dims: unknown input names \['nope'\]"),
        ({"dynamic_dims": {"x": [5]}}, r"dynamic_dims\['x'\]: dims \[5\] out of range"),
        ({"metadata": {"bad": object()}}, "metadata: must be JSON-serialisable"),
    ],
)
def test_bad_export_options_are_named(tmp_path, kwargs, message):
    with pytest.raises(torchport.BadOptionError, match=message):
        torchport.export(MLP(), torch.randn(2, 6), tmp_path / "m.pt", **kwargs)


def test_plain_torchscript_gets_a_derived_contract(tmp_path):
    torch.manual_seed(0)
    model = TwoInTwoOut().eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(tmp_path / "plain.pt"))
    m = torchport.read_manifest(tmp_path / "plain.pt")
    assert m.schema == 0 and m.input_names == ["left", "right"] and m.output_names == ["output_0", "output_1"]
    native = torchport.NativeModel(tmp_path / "plain.pt")
    assert native.manifest.input_names == ["left", "right"]
    a, b = torch.randn(4, 5), torch.randn(4, 3)
    with torch.inference_mode():
        expected = model(a, b)
    for e, g in zip(expected, native.run({"right": b, "left": a})):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    report = torchport.verify(tmp_path / "plain.pt", model=model, inputs=(a, b))
    assert report.bit_exact, str(report)


def _plain_open_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def test_written_files_get_ordinary_permissions(tmp_path):
    # Atomic writes go through a private temporary file; the result must still
    # be readable as a plainly written file would be.
    path = torchport.export(MLP(), torch.randn(2, 6), tmp_path / "m.pt")
    assert stat.S_IMODE(path.stat().st_mode) == _plain_open_mode()
    torch.save([torch.randn(2, 6)], tmp_path / "in.pt")
    proc = run_binary("predict", str(path), "--input", str(tmp_path / "in.pt"), "--output", str(tmp_path / "out.pt"))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE((tmp_path / "out.pt").stat().st_mode) == _plain_open_mode()


class _Defaults(torch.nn.Module):
    def forward(self, x, mask: Optional[torch.Tensor] = None, flag: bool = False):
        return x if mask is None else x * mask


def test_arguments_the_example_leaves_out_are_named_in_a_warning(tmp_path):
    with pytest.warns(torchport.ExportWarning, match=r"_Defaults\.forward\(\) arguments the example leaves out are "
                      r"fixed at their defaults in the artifact: mask=None, flag=False"):
        torchport.export(_Defaults(), torch.rand(2, 3), tmp_path / "m.pt")
    assert torchport.read_manifest(tmp_path / "m.pt").constants == {"mask": None, "flag": False}
    with warnings.catch_warnings(record=True) as caught:  # all given: nothing to say
        warnings.simplefilter("always")
        torchport.export(_Defaults(), torch.rand(2, 3), tmp_path / "all.pt",
                         example_kwargs={"mask": torch.ones(2, 3), "flag": True})
    assert not [w for w in caught if "leaves out" in str(w.message)], [str(w.message) for w in caught]
