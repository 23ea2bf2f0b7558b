"""The binaries as a user runs them: torchport-run and the torchport command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import torchport
from conftest import TwoInTwoOut, run_binary, run_cli


@pytest.fixture(scope="module")
def two_io(tmp_path_factory):
    torch.manual_seed(0)
    model = TwoInTwoOut().eval()
    path = torchport.export(model, (torch.randn(2, 5), torch.randn(2, 3)), tmp_path_factory.mktemp("two") / "two.pt")
    return model, path


def test_binary_runs_without_library_path(mlp_artifact):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    proc = run_binary("--version", env=env)
    assert proc.returncode == 0 and f"torch {torch.__version__}" in proc.stdout
    proc = run_binary("info", str(mlp_artifact[1]), env=env)
    assert proc.returncode == 0, proc.stderr


def test_extension_imports_before_torch():
    code = "import sys; import torchport._native as n; assert 'torch' in sys.modules; print(n.__torch_version__)"
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == torch.__version__


def test_info_prints_the_manifest(mlp_artifact):
    proc = run_binary("info", str(mlp_artifact[1]))
    assert proc.returncode == 0
    info = json.loads(proc.stdout)
    assert info == {**json.loads(torchport.read_manifest(mlp_artifact[1]).to_json()), "golden": True}


@pytest.mark.parametrize("layout", ["tensor", "list", "dict"])
def test_predict_reads_every_input_layout(mlp_artifact, tmp_path, layout):
    model, path = mlp_artifact
    x = torch.randn(5, 6)
    data = {"tensor": x, "list": [x], "dict": {"x": x}}[layout]
    torch.save(data, tmp_path / "in.pt")
    proc = run_binary("predict", str(path), "--input", str(tmp_path / "in.pt"), "--output", str(tmp_path / "out.pt"))
    assert proc.returncode == 0, proc.stderr
    out = torch.load(tmp_path / "out.pt")  # default weights_only=True
    with torch.inference_mode():
        torch.testing.assert_close(out, model(x), rtol=0, atol=0)


def test_predict_writes_a_tuple_for_several_outputs(two_io, tmp_path):
    model, path = two_io
    a, b = torch.randn(4, 5), torch.randn(4, 3)
    torch.save({"right": b, "left": a}, tmp_path / "in.pt")
    proc = run_binary("predict", str(path), "--input", str(tmp_path / "in.pt"), "--output", str(tmp_path / "out.pt"))
    assert proc.returncode == 0, proc.stderr
    out = torch.load(tmp_path / "out.pt")
    assert isinstance(out, tuple) and len(out) == 2
    with torch.inference_mode():
        for e, g in zip(model(a, b), out):
            torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_selfcheck_and_bench(mlp_artifact):
    _, path = mlp_artifact
    proc = run_binary("selfcheck", str(path))
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"]
    proc = run_binary("bench", str(path), "--iters", "30", "--warmup", "3", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    bench = json.loads(proc.stdout)
    assert bench["iters"] == 30 and bench["threads"] == 1
    assert 0 < bench["p50_ms"] <= bench["p90_ms"] <= bench["p99_ms"] <= bench["max_ms"]
    assert bench["first_call_ms"] > 0


def test_tampered_artifacts_are_caught(tmp_path):
    # The model changed after export: the payload checksum refuses it (exit 3);
    # without a checksum, selfcheck against the golden outputs does (exit 1).
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).eval()
    path = torchport.export(model, torch.randn(2, 3), tmp_path / "m.pt")
    extra = {"torchport/manifest.json": "", "torchport/golden.pt": ""}
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        module = torch.jit.load(str(path), _extra_files=extra)
        module.bias.data.add_(0.5)
        torch.jit.save(module, str(path), _extra_files=extra)
    proc = run_binary("selfcheck", str(path))
    assert proc.returncode == 3 and "checksum mismatch" in proc.stderr, proc.stderr

    manifest = json.loads(extra["torchport/manifest.json"])
    del manifest["checksum"]
    extra["torchport/manifest.json"] = json.dumps(manifest)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.jit.save(module, str(path), _extra_files=extra)
    proc = run_binary("selfcheck", str(path))
    assert proc.returncode == 1
    row = json.loads(proc.stdout)["outputs"][0]
    assert not row["ok"] and row["max_abs_diff"] == pytest.approx(0.5, rel=1e-4)


def test_help_everywhere():
    proc = run_binary("--help")
    assert proc.returncode == 0
    for word in ("info", "predict", "selfcheck", "bench", "exit codes"):
        assert word in proc.stdout
    for word in (".pte", "10 a backend is not installed", "pip install 'torchport[executorch]'"):
        assert word in proc.stdout, word
    for cmd in ([], ["inspect"], ["verify"], ["run"], ["demo"]):
        proc = run_cli(*cmd, "--help")
        assert proc.returncode == 0 and "usage: torchport" in proc.stdout, cmd
    text = " ".join(run_cli("--help").stdout.split())  # argparse wraps to the terminal's width
    assert ".pte" in text and "10 a runtime or backend is not installed" in text
    assert ".pte: ExecuTorch's Python runtime" in " ".join(run_cli("verify", "--help").stdout.split())


@pytest.mark.parametrize("args", [["inspect"], ["inspect", "--json"], ["--help"]], ids=["table", "json", "help"])
def test_a_closed_stdout_ends_quietly(mlp_artifact, args):
    """`torchport inspect m.pt | head -1`: the reader is gone before anything is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        cmd = [str(Path(sys.executable).parent / "torchport"), *args]
        if args[0] == "inspect":
            cmd.append(str(mlp_artifact[1]))
        proc = subprocess.run(cmd, stdout=write_end, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_inspect(mlp_artifact):
    proc = run_cli("inspect", str(mlp_artifact[1]))
    assert proc.returncode == 0
    assert "x                float32   [batch, 6]" in proc.stdout and "labels" in proc.stdout
    assert "payload checksum: xxh3-128+manifest:" in proc.stdout and "verified" in proc.stdout
    proc = run_cli("inspect", "--json", str(mlp_artifact[1]))
    assert json.loads(proc.stdout)["inputs"][0]["shape"] == ["batch", 6]


def test_verify_command(mlp_artifact, tmp_path):
    _, path = mlp_artifact
    proc = run_cli("verify", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "result: bit-exact" in proc.stdout
    torch.save({"x": torch.randn(9, 6)}, tmp_path / "in.pt")
    proc = run_cli("verify", str(path), "--inputs", str(tmp_path / "in.pt"), "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"] and report["reference"] == "torchscript"
    assert {r["runtime"] for r in report["rows"]} == {"native", "binary"}


def test_run_command(two_io, tmp_path):
    model, path = two_io
    a, b = torch.randn(3, 5), torch.randn(3, 3)
    torch.save([a, b], tmp_path / "in.pt")
    proc = run_cli("run", str(path), "--input", str(tmp_path / "in.pt"), "--output", str(tmp_path / "out.pt"))
    assert proc.returncode == 0, proc.stderr
    out = torch.load(tmp_path / "out.pt")
    with torch.inference_mode():
        for e, g in zip(model(a, b), out):
            torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_cmake_prefix_path():
    proc = run_cli("--cmake-prefix-path")
    assert proc.returncode == 0
    prefix = proc.stdout.strip()
    assert prefix == torchport.cmake_prefix_path
    assert os.path.isfile(os.path.join(prefix, "torchport", "torchportConfig.cmake"))


def test_export_command_offers_what_the_format_registry_holds():
    # The parser stays free of torch (quick `torchport inspect`), so it spells the
    # formats out; this keeps that list equal to the registry's.
    import argparse

    from torchport import cli, formats
    from torchport.exporter import EXPORT_FORMATS

    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    export = {a.dest: a for a in sub.choices["export"]._actions}
    assert tuple(export["format"].choices) == EXPORT_FORMATS
    assert tuple(export["delegate"].choices) == tuple(d for f in formats.REGISTRY.values() for d in f.delegates)
