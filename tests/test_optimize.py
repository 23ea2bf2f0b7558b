"""Optimisation levels: each level's outputs stay within the tolerance its
manifest states, at the export batch and at others, through every runtime."""

from __future__ import annotations

import json

import pytest
import torch

import torchport
from torchport import optimize
from torchport.errors import BadArtifactError, BadOptionError
from torchport.exporter import _jit
from torchport.native import NativeModel, load_native
from torchport.parity import verify

from conftest import CASES

ZOO = [c for c in CASES if c.name in ("mlp", "cnn_bn")]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """{(case, level): (model, path)} exported at batch 3."""
    out = {}
    folder = tmp_path_factory.mktemp("levels")
    for case in ZOO:
        torch.manual_seed(0)
        model = case.build().eval()
        for level in optimize.LEVELS:
            out[case.name, level] = model, torchport.export(model, case.example(3), folder / f"{case.name}_{level}.pt",
                                                            optimize=level)
    return out


@pytest.mark.parametrize("level", optimize.LEVELS)
@pytest.mark.parametrize("case", ZOO, ids=[c.name for c in ZOO])
def test_level_within_its_stated_tolerance(artifacts, case, level):
    model, path = artifacts[case.name, level]
    m = torchport.read_manifest(path)
    assert m.optimize == level
    if level == "none":
        assert m.tolerance is None  # bit-exact, as before levels
    else:
        recorded = m.metadata[optimize.METADATA_KEY]
        assert recorded["level"] == level and recorded["safety_factor"] == optimize.SAFETY_FACTOR
        assert m.tolerance == {"atol": max(optimize.SAFETY_FACTOR * recorded["max_abs_diff"], optimize.ATOL_FLOOR),
                               "rtol": 0.0}
    assert verify(path, model=model).ok  # golden inputs, every runtime, the manifest's tolerance
    tol = m.tolerance or {"atol": 0.0, "rtol": 0.0}
    native = NativeModel(path)
    for batch in (1, 7):  # neither the export batch nor its double
        inputs = case.example(batch)
        with torch.inference_mode():
            expected = model(*inputs)
        torch.testing.assert_close(native.run(*inputs)[0], expected, atol=tol["atol"], rtol=tol["rtol"])


def test_none_stays_bit_exact(artifacts):
    model, path = artifacts["cnn_bn", "none"]
    assert verify(path, model=model, atol=0.0, rtol=0.0).bit_exact


def test_freeze_folds_batch_norm(artifacts):
    # The frozen graph has no batch_norm left: conv-BN folding ran.
    load = lambda level: _jit(torch.jit.load, str(artifacts["cnn_bn", level][1]))  # noqa: E731
    assert "batch_norm" in str(load("none").inlined_graph)
    for level in ("freeze", "fast"):  # "fast" files hold the frozen graph; the runtime adds oneDNN at load
        assert "batch_norm" not in str(load(level).inlined_graph)


def test_bad_levels_are_refused(tmp_path):
    model = torch.nn.Linear(3, 2)
    with pytest.raises(BadOptionError, match="optimize: expected one of"):
        torchport.export(model, torch.rand(2, 3), tmp_path / "a.pt", optimize="turbo")
    with pytest.raises(BadOptionError, match="applies to TorchScript"):
        torchport.export(model, torch.rand(2, 3), tmp_path / "a.onnx", format="onnx", optimize="fast")
    assert not list(tmp_path.iterdir())


def test_manifest_optimize_field_is_checked_by_the_runtime(artifacts):
    text = torchport.read_manifest(artifacts["mlp", "fast"][1]).to_json()
    assert load_native().Manifest.from_json(text).optimize == "fast"
    doc = json.loads(text)
    doc["optimize"] = "ludicrous"
    with pytest.raises(BadArtifactError, match="field 'optimize' must be"):
        load_native().Manifest.from_json(json.dumps(doc))
    del doc["optimize"]  # manifests written before levels still read
    assert load_native().Manifest.from_json(json.dumps(doc)).optimize == ""

