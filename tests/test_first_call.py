"""A cheap first call: TorchScript without the profiling executor's optimising
passes (optimize_graph=False) gives the same bits as with them, on every zoo
model; torchport-run predict runs many input files with one load."""

from __future__ import annotations

import pytest
import torch

from torchport.native import NativeModel

from conftest import run_binary


def test_unoptimized_graph_gives_the_same_bits(exported):
    _, path, case = exported
    fast_start = NativeModel(path, optimize_graph=False)
    default = NativeModel(path)
    assert fast_start.selfcheck()["ok"]  # bit-exact against eager's golden outputs
    golden_inputs, _ = default.golden()
    for _ in range(3):  # the profiling executor optimises during its first two calls
        for a, b in zip(fast_start.run(*golden_inputs), default.run(*golden_inputs)):
            assert torch.equal(a, b), case.name


def test_predict_many_files_in_one_process(mlp_artifact, tmp_path):
    _, path = mlp_artifact
    model = NativeModel(path)
    args = ["predict", str(path), "--optimize-graph", "no"]
    inputs = [torch.randn(n, 6) for n in (1, 4, 2)]
    for i, x in enumerate(inputs):
        torch.save(x, tmp_path / f"in{i}.pt")
        args += ["--input", str(tmp_path / f"in{i}.pt"), "--output", str(tmp_path / f"out{i}.pt")]
    proc = run_binary(*args)
    assert proc.returncode == 0, proc.stderr
    for i, x in enumerate(inputs):
        assert torch.equal(torch.load(tmp_path / f"out{i}.pt"), model.run(x)[0])


@pytest.mark.parametrize(
    "pairs, message",
    [
        ([("in0.pt", "out0.pt"), ("in1.pt", None)], "one --output per --input (got 2 --input, 1 --output)"),
        ([("in0.pt", "out.pt"), ("in1.pt", "out.pt")], "out.pt' is given twice"),
        ([("in0.pt", "out0.pt"), ("in1.pt", "in0.pt")], "in0.pt"),
    ],
)
def test_predict_pairs_are_checked_before_running(mlp_artifact, tmp_path, pairs, message):
    _, path = mlp_artifact
    args = ["predict", str(path)]
    for name, out in pairs:
        torch.save(torch.randn(1, 6), tmp_path / name)
        args += ["--input", str(tmp_path / name)]
        if out:
            args += ["--output", str(tmp_path / out)]
    proc = run_binary(*args)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "out0.pt").exists()
