"""ExecuTorch .pte artifacts: export, the C++ runtime's ExecuTorch backend (chosen
by content), verify, corrupted files, and examples/edge_app, which runs a .pte
with ExecuTorch's runtime alone.

Lowering costs seconds per model, so three are lowered once per session (the MLP
to XNNPACK and without a delegate, conftest's mlp_pte, shared with
other test files; the batch-norm CNN to XNNPACK) and shared."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import torchport
from conftest import CASES, MLP, run_binary, run_cli
from torchport import _native
from torchport.formats import EXECUTORCH_DIM_MAX, EXECUTORCH_TOLERANCES, PTE_TAIL_MAGIC
from torchport.models import build_model

pytest.importorskip("executorch")
if not _native.WITH_EXECUTORCH:
    pytest.skip("this torchport runtime was built without ExecuTorch", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
CNN_CASE = next(c for c in CASES if c.name == "cnn_bn")


@pytest.fixture(scope="session")
def cnn_pte(tmp_path_factory):
    torch.manual_seed(0)
    model = CNN_CASE.build().eval()
    # XNNPACK's lowering of this CNN plans the batch for fewer than EXECUTORCH_DIM_MAX (15 with
    # torch 2.13.0 and executorch 1.5.1); export says so.
    with pytest.warns(torchport.ExportWarning, match=r"planned memory for smaller dynamic dims .*input 'image' dim 0: at most"):
        path = torchport.export(model, CNN_CASE.example(3), tmp_path_factory.mktemp("cnn") / "cnn.pte",
                                format="executorch")
    return model, path


@pytest.fixture(scope="session")
def transformer_pte(tmp_path_factory):
    """A small zoo transformer lowered to XNNPACK from a batch-4 example (its
    ``qkv(x).split`` once pinned the planned batch to 4)."""
    torch.manual_seed(0)
    model = build_model("transformer", {"d_model": 16, "heads": 2, "layers": 1, "ff": 32, "max_len": 32}).eval()
    path = torchport.export(model, torch.randn(4, 12, 1), tmp_path_factory.mktemp("tr") / "transformer.pte",
                            format="executorch")
    return model, path


@pytest.fixture(scope="session")
def rnn_pte(tmp_path_factory):
    """A tiny zoo LSTM (6 steps, one layer) without a delegate: ExecuTorch unrolls
    the recurrence, and export warns past formats.RNN_UNROLL_WARN_STEPS (lowered
    to 5 here so that a cheap model shows it)."""
    from unittest import mock

    from torchport import formats

    torch.manual_seed(0)
    model = build_model("rnn", {"hidden": 4, "layers": 1}).eval()
    with mock.patch.object(formats.executorch, "RNN_UNROLL_WARN_STEPS", 5), \
            pytest.warns(torchport.ExportWarning, match=r"no LSTM/GRU kernel: lowering RNN unrolls .*aten.lstm: 6 steps"):
        path = torchport.export(model, torch.randn(3, 6, 1), tmp_path_factory.mktemp("rnn") / "rnn.pte",
                                format="executorch", delegate="none")
    return model, path


# ---------------------------------------------------------------------- export


def test_pte_layout_manifest_and_tolerance(mlp_pte):
    _, paths = mlp_pte
    for delegate, path in paths.items():
        data = path.read_bytes()
        assert data[4:8] == b"ET12"  # an ExecuTorch program first, as ExecuTorch wrote it
        assert data[-40:-32] == PTE_TAIL_MAGIC
        program, manifest_size, golden_size = struct.unpack("<QQQ", data[-24:])
        assert program + manifest_size + golden_size + 40 == len(data)
        m = torchport.read_manifest(path)
        assert m.format == "executorch" and m.export_method == "torch.export"
        assert m.tolerance == EXECUTORCH_TOLERANCES[delegate]
        compile_info = m.metadata["torchport.compile"]
        assert compile_info["delegate"] == delegate and compile_info["dim_max"] == EXECUTORCH_DIM_MAX
        assert compile_info["input_bounds"] == [[EXECUTORCH_DIM_MAX, 6]]
        assert m.checksum.startswith("xxh3-128+manifest:") and m.metadata["labels"] == ["a", "b", "c"]
        assert torchport.NativeModel(path).format == "executorch"


def test_delegate_is_checked(tmp_path):
    with pytest.raises(torchport.BadOptionError, match=r"delegate: expected one of \('xnnpack', 'none'\), got 'coreml'"):
        torchport.export(MLP(), torch.randn(2, 6), tmp_path / "m.pte", format="executorch", delegate="coreml")
    with pytest.raises(torchport.BadOptionError, match="delegate: applies to format 'executorch'"):
        torchport.export(MLP(), torch.randn(2, 6), tmp_path / "m.pt", delegate="xnnpack")
    assert not list(tmp_path.iterdir())


def test_what_torch_export_cannot_capture_is_refused_with_the_reason(tmp_path):
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x - 1

    with pytest.raises(torchport.ExportError, match=r"torch.export could not capture DataDependent"):
        torchport.export(DataDependent(), torch.randn(2, 3), tmp_path / "dd.pte", format="executorch")
    assert not (tmp_path / "dd.pte").exists()


def test_a_pte_that_runs_only_at_the_example_size_is_refused(tmp_path, monkeypatch):
    """Without the split rewrite, ExecuTorch plans the batch for the example's 4
    only; export runs the .pte at batch 1 and refuses to write it."""
    from torchport import formats

    class Split(torch.nn.Module):
        def forward(self, x):
            a, b = x.split(3, dim=1)
            return a * b

    monkeypatch.setattr(formats.executorch, "_SPLIT_AS_SLICES", {})
    with pytest.warns(torchport.ExportWarning, match="at most 4"), pytest.raises(torchport.ExportError,
                       match=r"the exported \.pte fails at input 'x' dim 0 = 1 \(the smallest\), so nothing was written"):
        torchport.export(Split(), torch.randn(4, 6), tmp_path / "split.pte", format="executorch", delegate="none")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------- running


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_sequence_families_run_at_other_batches(transformer_pte, rnn_pte, tmp_path, batch, family):
    model, path = transformer_pte if family == "transformer" else rnn_pte
    steps = torchport.read_manifest(path).inputs[0].shape[1]
    assert torchport.read_manifest(path).metadata["torchport.compile"]["input_bounds"] == [[EXECUTORCH_DIM_MAX, steps, 1]]
    x = torch.randn(batch, steps, 1)
    with torch.inference_mode():
        expected = model(x)
    tol = torchport.read_manifest(path).tolerance
    torch.testing.assert_close(torchport.NativeModel(path).run(x)[0], expected, atol=tol["atol"], rtol=tol["rtol"])
    src, out = tmp_path / "in.pt", tmp_path / "out.pt"
    torch.save(x, src)
    proc = run_binary("predict", str(path), "--input", str(src), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    got = torch.load(out)
    torch.testing.assert_close(got[0] if isinstance(got, (list, tuple)) else got, expected, atol=tol["atol"], rtol=tol["rtol"])


@pytest.mark.parametrize("batch", [1, 3, 11])
def test_pte_matches_eager_through_binding_and_binary(mlp_pte, cnn_pte, tmp_path, batch):
    for model, path, example in ((mlp_pte[0], mlp_pte[1]["xnnpack"], lambda b: (torch.randn(b, 6),)),
                                 (mlp_pte[0], mlp_pte[1]["none"], lambda b: (torch.randn(b, 6),)),
                                 (cnn_pte[0], cnn_pte[1], CNN_CASE.example)):
        x = example(batch)
        with torch.inference_mode():
            expected = model(*x)
        tol = torchport.read_manifest(path).tolerance
        got = torchport.NativeModel(path).run(*x)[0]
        torch.testing.assert_close(got, expected, atol=tol["atol"], rtol=tol["rtol"])
        src, out = tmp_path / "in.pt", tmp_path / "out.pt"
        torch.save(x[0], src)
        proc = run_binary("predict", str(path), "--input", str(src), "--output", str(out))
        assert proc.returncode == 0, proc.stderr
        torch.testing.assert_close(torch.load(out)[0] if isinstance(torch.load(out), (list, tuple)) else torch.load(out),
                                   expected, atol=tol["atol"], rtol=tol["rtol"])


def test_selfcheck_and_verify_pass_within_the_delegate_tolerance(mlp_pte, cnn_pte):
    model, paths = mlp_pte
    for path in (*paths.values(), cnn_pte[1]):
        native = torchport.NativeModel(path)
        assert native.selfcheck()
    report = torchport.verify(paths["xnnpack"], model=model)
    assert report.ok, str(report)
    assert {r.runtime for r in report.rows} == {"eager", "executorch", "native", "binary"}
    assert "(executorch) against golden outputs" in str(report)
    proc = run_cli("verify", str(cnn_pte[1]))
    assert proc.returncode == 0 and "result: MISMATCH" not in proc.stdout, proc.stdout + proc.stderr


def test_verify_passes_for_the_sequence_families(transformer_pte, rnn_pte):
    # verify against eager: ExecuTorch's own runtime, the C++ runtime and torchport-run,
    # on inputs at a batch other than the export example's.
    for model, path in (transformer_pte, rnn_pte):
        steps = torchport.read_manifest(path).inputs[0].shape[1]
        report = torchport.verify(path, model=model, inputs=(torch.randn(7, steps, 1),))
        assert report.ok, str(report)
        assert {r.runtime for r in report.rows} == {"executorch", "native", "binary"}, str(report)
        assert "against eager" in str(report)


def test_wrong_inputs_get_the_same_error_as_other_formats(mlp_pte, mlp_artifact, tmp_path):
    _, paths = mlp_pte
    messages = {}
    for fmt, path in (("torchscript", mlp_artifact[1]), ("executorch", paths["xnnpack"])):
        native = torchport.NativeModel(path)
        with pytest.raises(torchport.BadInputError) as info:
            native.run(torch.randn(2, 7))
        messages[fmt] = str(info.value)
        with pytest.raises(torchport.BadInputError, match="expected dtype float32, got float64"):
            native.run(torch.randn(2, 6, dtype=torch.float64))
        assert native.run(torch.randn(1, 6))[0].shape == (1, 3)  # still usable
    assert messages["executorch"] == messages["torchscript"]
    # Beyond the bound ExecuTorch planned memory for: the same kind, naming the bound.
    with pytest.raises(torchport.BadInputError, match=rf"dim 0 is {EXECUTORCH_DIM_MAX + 1}, .* at most {EXECUTORCH_DIM_MAX}"):
        torchport.NativeModel(paths["xnnpack"]).run(torch.randn(EXECUTORCH_DIM_MAX + 1, 6))
    bad = tmp_path / "bad.pt"
    torch.save(torch.randn(2, 7), bad)
    proc = run_binary("predict", str(paths["xnnpack"]), "--input", str(bad), "--output", str(tmp_path / "o.pt"))
    assert proc.returncode == 4 and "input 'x': dim 1 expected 6, got 7" in proc.stderr


def test_corrupted_or_truncated_pte_is_a_clean_error(mlp_pte, tmp_path):
    _, paths = mlp_pte
    data = paths["xnnpack"].read_bytes()
    program = struct.unpack("<Q", data[-24:-16])[0]
    flipped = bytearray(data)
    flipped[program // 2] ^= 0xFF  # inside the program: the checksum catches it
    bare = data[:program]  # no torchport tail: ExecuTorch's verifier is the guard
    cases = {
        "flipped.pte": bytes(flipped),
        "truncated.pte": data[: len(data) // 2],
        "tail_cut.pte": data[:-1],
        "bare_truncated.pte": bare[: len(bare) * 2 // 3],
        "bare_garbage.pte": bare[:8] + os.urandom(len(bare) - 8),
        "bad_sizes.pte": data[:-24] + struct.pack("<QQQ", 2**63, 2**63, 40),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(torchport.BadArtifactError, match=re.escape(name)) as info:
            torchport.NativeModel(path)
        if name == "flipped.pte":
            assert "checksum mismatch" in str(info.value)
        proc = run_binary("info", str(path))
        assert proc.returncode == 3 and name in proc.stderr, proc.stderr


def test_concurrent_runs_from_many_threads_match(cnn_pte):
    _, path = cnn_pte
    native = torchport.NativeModel(path, concurrency=3)
    inputs = [CNN_CASE.example(2) for _ in range(6)]
    expected = [native.run(*x)[0] for x in inputs]
    failures = []

    def work(k: int) -> None:
        for i in range(10):
            j = (k + i) % len(inputs)
            if not torch.equal(native.run(*inputs[j])[0], expected[j]):
                failures.append(j)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_cli_exports_and_inspects_a_pte(mlp_pte, tmp_path):
    _, paths = mlp_pte
    proc = run_cli("inspect", str(paths["xnnpack"]))
    assert proc.returncode == 0 and "format: executorch (atol=" in proc.stdout, proc.stdout + proc.stderr


# ----------------------------------------------------------------- edge_app


@pytest.fixture(scope="module")
def edge_app(tmp_path_factory) -> Path:
    """examples/edge_app built by its README's commands, in a folder laid out like the repository."""
    d = tmp_path_factory.mktemp("edge")
    for name in ("examples",):
        (d / name).symlink_to(ROOT / name)
    (d / ".venv").symlink_to(sys.prefix)
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "examples" / "edge_app" / "README.md").read_text(), flags=re.S)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    for cmd in [line for block in blocks for line in block.splitlines() if line.strip()]:
        proc = subprocess.run(["bash", "-c", cmd], cwd=d, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
        if cmd.startswith("./build/"):
            assert "output output: [4, 3]" in proc.stdout and "rejected bad input: input 'input'" in proc.stdout
    app = d / "build" / "edge_app" / "edge_app"
    assert app.exists()
    return app


def test_edge_app_links_no_libtorch(edge_app):
    needed = subprocess.run(["readelf", "-d", str(edge_app)], capture_output=True, text=True).stdout
    assert "libexecutorch.so" in needed and "libtorch" not in needed and "libc10" not in needed, needed


def test_edge_app_runs_a_pte_within_tolerance(edge_app, mlp_pte, cnn_pte, transformer_pte, rnn_pte, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    for path in (mlp_pte[1]["xnnpack"], cnn_pte[1], transformer_pte[1], rnn_pte[1]):
        inputs, expected = torchport.read_golden(path)
        src, out = tmp_path / "in.bin", tmp_path / "out.bin"
        src.write_bytes(b"".join(t.contiguous().numpy().tobytes() for t in inputs))
        batch = inputs[0].shape[0]
        proc = subprocess.run([str(edge_app), str(path), str(batch), str(src), str(out)], capture_output=True,
                              text=True, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "(executorch)" in proc.stdout and "rejected bad input: input '" in proc.stdout, proc.stdout
        got = torch.frombuffer(bytearray(out.read_bytes()), dtype=torch.float32).reshape(expected[0].shape)
        tol = torchport.read_manifest(path).tolerance
        torch.testing.assert_close(got, expected[0], atol=tol["atol"], rtol=tol["rtol"])


def test_bench_runs_a_pte_and_leaves_out_batches_above_its_bound(cnn_pte):
    # XNNPACK plans a conv model's batch for at most 15: batch 32 is left out
    # for the .pte contenders and said so, the other batches are timed.
    from torchport.bench import bench

    report = bench(cnn_pte[1], batches=[1, 32], threads=[1], iters=2, rounds=1)
    timed = {(r.runtime, r.batch) for r in report.rows}
    assert {("native", 1), ("executorch", 1)} <= timed and ("executorch", 32) not in timed, str(report)
    assert "executorch at batch 32" in report.skipped and "torchscript" in report.skipped, report.skipped


def test_a_tune_profile_can_pick_the_pte_sibling(mlp_pte, tmp_path):
    from torchport.errors import BadArtifactError, BadOptionError
    from torchport.tune import tune

    model, paths = mlp_pte
    pte = paths["xnnpack"]
    pt = torchport.export(model, torch.randn(3, 6), tmp_path / pte.with_suffix(".pt").name)
    shutil.copy(pte, tmp_path / pte.name)  # the sibling beside it, same stem
    threads = torch.get_num_threads()
    try:
        report = tune(pt, threads=[1], atol=1e-4, profile=tmp_path / "p.json", iters=2, rounds=1, warmup=0)
    finally:
        torch.set_num_threads(threads)
    assert [c.ok for c in report.candidates if c.format == "executorch"] == [True], report
    doc = json.loads((tmp_path / "p.json").read_text())
    doc.update(format="executorch", optimize="", file_checksum=torchport.read_manifest(pte).checksum)
    (tmp_path / "p.json").write_text(json.dumps(doc))
    loaded = torchport.NativeModel(pt, profile=tmp_path / "p.json")
    assert loaded.format == "executorch" and loaded.path == tmp_path / pte.name
    torch.set_num_threads(threads)
    doc["file_checksum"] = "xxh3-128:00"
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(BadArtifactError, match=r"field 'file_checksum'.*sibling changed"):
        torchport.NativeModel(pt, profile=tmp_path / "p.json")
    with pytest.raises(BadOptionError, match="optimize: \"freeze\" applies to TorchScript artifacts"):
        torchport.NativeModel(pte, optimize="freeze")
