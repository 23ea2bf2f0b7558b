"""`torchport bench`: every contender that applies runs, on the same inputs, and
the report (table, JSON, PNG) says what it measured. No timing is asserted."""

from __future__ import annotations

import json

import pytest
import torch

import torchport
from torchport.bench import batched_inputs, bench
from torchport.errors import BadOptionError

from conftest import MLP, run_cli


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    torch.manual_seed(0)
    return torchport.export(MLP().eval(), torch.randn(3, 6), tmp_path_factory.mktemp("bench") / "mlp.pt")


def test_bench_report_is_complete(artifact):
    report = bench(artifact, batches=[1, 5], threads=[1], iters=3, rounds=2, warmup=1)
    runtimes = ["torchscript", "native", "native-cpp"]
    assert list(report.load_ms) == runtimes and list(report.first_call_ms) == runtimes
    assert set(report.skipped) == {"aoti", "executorch", "onnxruntime"}  # no .pt2, .pte or .onnx beside it
    assert [(r.batch, r.runtime) for r in report.rows] == [(b, rt) for b in (1, 5) for rt in runtimes]
    for r in report.rows:
        assert 0 < r.p50_ms <= r.p90_ms <= r.p99_ms
        assert r.throughput == pytest.approx(r.batch * 1e3 / r.p50_ms)
    assert [r.ratio for r in report.rows if r.runtime == "torchscript"] == [1.0, 1.0]  # the first contender
    text = str(report)
    assert "native-cpp" in text and "aoti: not run (no mlp.pt2 beside the artifact)" in text


def test_batched_inputs_repeat_and_slice():
    golden = [torch.arange(6.0).reshape(3, 2)]
    assert batched_inputs(golden, True, 1)[0].tolist() == [[0, 1]]
    assert batched_inputs(golden, True, 5)[0][:, 0].tolist() == [0, 2, 4, 0, 2]
    assert batched_inputs(golden, False, 5)[0].shape == (3, 2)


def test_bench_refuses_bad_options(artifact):
    with pytest.raises(BadOptionError, match="runtimes: unknown"):
        bench(artifact, runtimes=["tensorrt"])
    with pytest.raises(BadOptionError, match="batch: expected positive integers"):
        bench(artifact, batches=[0])
    with pytest.raises(BadOptionError, match="'eager' needs --checkpoint"):
        bench(artifact, runtimes=["eager"])


def test_bench_cli_writes_json_and_png(artifact, tmp_path):
    proc = run_cli("bench", str(artifact), "--batch", "2", "--threads", "1", "--runtimes", "native,native-cpp",
                   "--iters", "3", "--rounds", "1", "--json", str(tmp_path / "b.json"), "--plot", str(tmp_path / "b.png"))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "b.json").read_text())
    assert [(r["runtime"], r["batch"], r["threads"]) for r in doc["rows"]] == [("native", 2, 1), ("native-cpp", 2, 1)]
    assert doc["rows"][0]["ratio"] == 1.0 and doc["iters"] == 3
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "p50 ms" in proc.stdout


def _with_onnx_sibling(folder):
    """m.pt and its m.onnx sibling, of one MLP."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = MLP().eval()
    path = torchport.export(model, torch.randn(3, 6), folder / "m.pt")
    torchport.export(model, torch.randn(3, 6), folder / "m.onnx", format="onnx")
    return path


def test_bench_runs_the_onnx_sibling(tmp_path):
    path = _with_onnx_sibling(tmp_path)
    report = bench(path, batches=[2], runtimes=["native", "onnxruntime"], iters=2, rounds=1)
    assert [r.runtime for r in report.rows] == ["native", "onnxruntime"] and not report.skipped


def test_bench_loads_onnxruntime_again_for_each_thread_count(tmp_path):
    # ONNX Runtime keeps its own pool per session: the second count needs a new one.
    path = _with_onnx_sibling(tmp_path)
    report = bench(path, batches=[2], threads=[1, 2], runtimes=["native", "onnxruntime"], iters=2, rounds=1)
    assert [(r.runtime, r.threads) for r in report.rows] == [
        ("native", 1), ("onnxruntime", 1), ("native", 2), ("onnxruntime", 2)]
