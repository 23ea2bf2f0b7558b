"""Parity: the same bytes through eager, Python TorchScript, the C++ binding and
the torchport-run binary, for every model kind in the zoo."""

from __future__ import annotations

import json

import pytest
import torch

import torchport
from conftest import run_binary


def test_golden_inputs_are_bit_exact_in_every_runtime(exported):
    model, path, case = exported
    report = torchport.verify(path, model=model)
    outputs = torchport.read_manifest(path).output_names
    assert {r.runtime for r in report.rows} == {"eager", "torchscript", "native", "binary"}
    assert len(report.rows) == 4 * len(outputs)
    assert report.bit_exact, f"{case.name}:\n{report}"


@pytest.mark.parametrize("batch", [1, 5])
def test_other_batch_sizes_match_eager(exported, batch):
    model, path, case = exported
    torch.manual_seed(batch)
    inputs = case.example(batch)
    report = torchport.verify(path, model=model, inputs=inputs)
    assert report.reference == "eager"
    assert report.bit_exact, f"{case.name} batch {batch}:\n{report}"

    # The same claim, checked directly against the binding's tensors.
    with torch.inference_mode():
        expected = model(*inputs)
    expected = (expected,) if isinstance(expected, torch.Tensor) else expected
    got = torchport.NativeModel(path).run(*inputs)
    for e, g in zip(expected, got):
        assert g.shape[0] == batch
        torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_binary_selfcheck_passes(exported):
    _, path, case = exported
    proc = run_binary("selfcheck", str(path))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and all(o["bit_exact"] for o in report["outputs"])


def test_manifest_records_dynamic_output_dims(exported):
    _, path, case = exported
    m = torchport.read_manifest(path)
    for spec in m.inputs + m.outputs:
        assert spec.shape[0] == "batch", f"{spec.name}: dim 0 should be the shared batch, got {spec.shape}"
    if case.name == "embedding_int64":
        assert m.inputs[0].dtype == "int64"
        assert m.inputs[0].shape == ("batch", None)
        assert m.outputs[0].shape == ("batch", 4)  # the sequence length does not reach the output


def test_report_shows_where_and_by_how_much(mlp_artifact):
    model, path = mlp_artifact
    with torch.no_grad():
        model.net[0].bias.add_(1e-3)  # the eager model drifts from the artifact
    try:
        report = torchport.verify(path, model=model, inputs=torch.randn(4, 6), atol=1e-6)
    finally:
        with torch.no_grad():
            model.net[0].bias.sub_(1e-3)
    assert not report.ok
    text = str(report)
    assert "MISMATCH" in text
    rows = {r.runtime: r for r in report.rows}
    assert rows["native"].max_abs_diff > 1e-6 and not rows["native"].bit_exact
    assert json.loads(report.to_json())["ok"] is False


def test_tolerance_accepts_small_differences(mlp_artifact):
    model, path = mlp_artifact
    inputs = torch.randn(4, 6)
    with torch.no_grad():
        model.net[0].bias.add_(1e-6)
    try:
        exact = torchport.verify(path, model=model, inputs=inputs)
        loose = torchport.verify(path, model=model, inputs=inputs, atol=1e-4, rtol=1e-4)
    finally:
        with torch.no_grad():
            model.net[0].bias.sub_(1e-6)
    assert not exact.ok
    assert loose.ok and not loose.bit_exact


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_runtime_matches_eager_on_cuda(exported):
    model, path, case = exported
    inputs = [t.cuda() for t in case.example(4)]
    model = model.cuda()
    with torch.inference_mode():
        expected = model(*inputs)
    expected = (expected,) if isinstance(expected, torch.Tensor) else expected
    native = torchport.NativeModel(path, device="cuda", warmup_runs=1)
    for e, g in zip(expected, native.run(*inputs)):
        assert g.is_cuda
        torch.testing.assert_close(g, e)  # CUDA kernels may differ in the last bits
    assert native.selfcheck(atol=1e-4, rtol=1e-4)["ok"]
