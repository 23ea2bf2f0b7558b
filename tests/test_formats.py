"""The formats beside TorchScript: AOTInductor .pt2 packages (run by the same C++
runtime, chosen by content) and ONNX (run by ONNX Runtime in Python).

AOTInductor compiles are slow, so two models are compiled once per session (the
MLP through format="all", conftest's mlp_formats, shared with other test files;
the batch-norm CNN as .pt2) and shared by the tests;
Inductor's cache (TORCHINDUCTOR_CACHE_DIR, set in conftest) keeps them quick on
later runs."""

from __future__ import annotations

import io
import json
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

import torchport
from conftest import CASES, MLP, run_binary
from torchport.formats import GOLDEN_FILE, MANIFEST_FILE, TOLERANCES
from torchport.manifest import payload_checksum

CNN_CASE = next(c for c in CASES if c.name == "cnn_bn")


@pytest.fixture(scope="session")
def cnn_pt2(tmp_path_factory):
    torch.manual_seed(0)
    model = CNN_CASE.build().eval()
    path = torchport.export(model, CNN_CASE.example(3), tmp_path_factory.mktemp("cnn") / "cnn.pt2", format="aoti")
    return model, path


def _records(path: Path) -> dict[str, bytes]:
    reader = torch._C.PyTorchFileReader(str(path))
    return {name: reader.get_record(name) for name in reader.get_all_records()}


def _rewrite(src: Path, dst: Path, change) -> Path:
    """A copy of a .pt2 with ``change(records)`` applied, packed as torch packs them."""
    from torch.export.pt2_archive._package import PT2ArchiveWriter

    records = _records(src)
    change(records)
    with PT2ArchiveWriter(str(dst)) as writer:
        for name, data in sorted(records.items()):
            if not name.startswith(".data/") and not writer.has_record(name):
                writer.write_bytes(name, data)
    return dst


# ------------------------------------------------------------------ format choice


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(torchport.BadOptionError, match=r"format: expected one of .*'aoti'.*got 'tflite'"):
        torchport.export(MLP(), torch.randn(2, 6), tmp_path / "m.bin", format="tflite")
    assert not list(tmp_path.iterdir())


def test_all_writes_every_format_with_the_same_contract(mlp_formats):
    _, paths = mlp_formats
    assert {f: p.suffix for f, p in paths.items()} == {"torchscript": ".pt", "aoti": ".pt2", "onnx": ".onnx"}
    manifests = {f: torchport.read_manifest(p) for f, p in paths.items()}
    for fmt, m in manifests.items():
        assert m.format == fmt
        assert [(s.name, s.dtype, s.shape) for s in m.inputs] == [("x", "float32", ("batch", 6))]
        assert [(s.name, s.shape) for s in m.outputs] == [("output", ("batch", 3))]
        assert m.metadata["labels"] == ["a", "b", "c"]
    assert manifests["torchscript"].tolerance is None and manifests["torchscript"].export_method == "script"
    assert manifests["aoti"].tolerance == TOLERANCES["aoti"] and manifests["aoti"].export_method == "torch.export"
    assert manifests["onnx"].tolerance == TOLERANCES["onnx"]
    # The golden examples are the same eager outputs in each.
    golden = {f: torchport.read_golden(p) for f, p in paths.items()}
    for f in ("aoti", "onnx"):
        for a, b in zip(golden["torchscript"][0] + golden["torchscript"][1], golden[f][0] + golden[f][1]):
            assert torch.equal(a, b), f


def test_pt2_layout_checksum_and_compile_time(mlp_formats):
    _, paths = mlp_formats
    path = paths["aoti"]
    names = {n.split("/", 1)[1] for n in zipfile.ZipFile(path).namelist()}
    assert {"archive_format", MANIFEST_FILE, GOLDEN_FILE} <= names
    assert any(n.startswith("data/aotinductor/model/") and n.endswith(".so") for n in names)
    m = torchport.read_manifest(path)
    assert m.checksum == payload_checksum(path.read_bytes())
    compile_info = m.metadata["torchport.compile"]
    assert compile_info["seconds"] > 0 and compile_info["inductor_configs"] == {"freezing": True}
    assert compile_info["torch"] == torch.__version__
    # torch's own loader reads the package torchport wrote.
    package = torch._inductor.aoti_load_package(str(path))
    assert package.get_metadata()["AOTI_DEVICE_KEY"] == "cpu"


def test_the_runtime_picks_the_backend_by_content_not_name(mlp_formats, tmp_path):
    _, paths = mlp_formats
    x = torch.randn(4, 6)
    expected = torchport.NativeModel(paths["aoti"]).run(x)[0]
    disguised = shutil.copy(paths["aoti"], tmp_path / "looks_like_torchscript.pt")
    native = torchport.NativeModel(disguised)
    assert native.format == "aoti"
    assert torch.equal(native.run(x)[0], expected)
    renamed = shutil.copy(paths["torchscript"], tmp_path / "looks_like_a_package.pt2")
    assert torchport.NativeModel(renamed).format == "torchscript"
    proc = run_binary("info", str(disguised))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["format"] == "aoti"


def test_onnx_runs_in_the_cpp_runtime_through_its_onnxruntime_backend(mlp_formats):
    pytest.importorskip("onnxruntime")
    _, paths = mlp_formats
    native = torchport.NativeModel(paths["onnx"])
    assert native.format == "onnx" and native.selfcheck()["ok"]
    x = torch.randn(3, 6)
    torch.testing.assert_close(native.run(x)[0], torchport.NativeModel(paths["torchscript"]).run(x)[0],
                               atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------- capture


class DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # the branch torch.export cannot capture
            return x * 2
        return x - 1


def test_capture_failure_names_the_construct_and_line_and_suggests_torchscript(tmp_path):
    line = DataDependent.forward.__code__.co_firstlineno + 1
    with pytest.raises(torchport.ExportError) as info:
        torchport.export(DataDependent(), torch.randn(2, 3), tmp_path / "dd.pt2", format="aoti")
    message = str(info.value)
    assert "torch.export could not capture DataDependent" in message
    assert f"test_formats.py:{line} in forward: if x.sum() > 0:" in message
    assert "format='torchscript'" in message
    assert not (tmp_path / "dd.pt2").exists()
    # TorchScript scripts the same model.
    torchport.export(DataDependent(), torch.randn(2, 3), tmp_path / "dd.pt")


def test_a_dynamic_dim_the_model_fixes_is_named(tmp_path):
    # torch.export unrolls an LSTM over time: the sequence length cannot stay dynamic.
    lstm = next(c for c in CASES if c.name == "lstm")
    with pytest.raises(torchport.ExportError) as info:
        torchport.export(lstm.build(), lstm.example(2), tmp_path / "lstm.pt2", format="aoti", dynamic_dims={"seq": [0, 1]})
    assert "seq_dim1 as dynamic but your code specialized it to be a constant (7)" in str(info.value)
    assert "format='torchscript'" in str(info.value)


# ------------------------------------------------------------ runtime behaviour


def test_pt2_wrong_inputs_are_refused_like_torchscript(mlp_formats, tmp_path):
    _, paths = mlp_formats
    messages = {}
    for fmt in ("torchscript", "aoti"):
        native = torchport.NativeModel(paths[fmt])
        with pytest.raises(torchport.BadInputError) as info:
            native.run(torch.randn(2, 7))
        messages[fmt] = str(info.value)
        with pytest.raises(torchport.BadInputError, match="expected dtype float32, got float64"):
            native.run(torch.randn(2, 6, dtype=torch.float64))
        assert native.run(torch.randn(1, 6))[0].shape == (1, 3)  # still usable
    assert messages["aoti"] == messages["torchscript"] == "input 'x': dim 1 expected 6, got 7 (shape [2, 7] vs [batch, 6])"
    bad = tmp_path / "bad.pt"
    torch.save(torch.randn(2, 7), bad)
    proc = run_binary("predict", str(paths["aoti"]), "--input", str(bad), "--output", str(tmp_path / "o.pt"))
    assert proc.returncode == 4 and "input 'x': dim 1 expected 6, got 7" in proc.stderr


def test_corrupted_pt2_is_a_clean_error(mlp_formats, tmp_path):
    _, paths = mlp_formats
    data = paths["aoti"].read_bytes()
    so = next(i for i in zipfile.ZipFile(paths["aoti"]).infolist() if i.filename.endswith(".so"))
    flipped = bytearray(data)
    middle = so.header_offset + 200 + so.file_size // 2  # inside the stored library
    flipped[middle] ^= 0xFF
    cases = {"flipped.pt2": bytes(flipped), "truncated.pt2": data[: len(data) // 2], "junk.pt2": b"PK\x03\x04junk"}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(torchport.BadArtifactError, match=name) as info:
            torchport.NativeModel(path)
        if name == "flipped.pt2":
            assert "checksum mismatch" in str(info.value)
        proc = run_binary("info", str(path))
        assert proc.returncode == 3 and name in proc.stderr, proc.stderr


def test_package_from_another_torch_release_is_refused(mlp_formats, tmp_path):
    _, paths = mlp_formats

    def older(records):
        m = json.loads(records[MANIFEST_FILE])
        m["torch_version"] = "2.12.0+cpu"
        records[MANIFEST_FILE] = json.dumps(m).encode()

    path = _rewrite(paths["aoti"], tmp_path / "old.pt2", older)
    # The checksum covers the manifest, so it catches the edit first; without it the release check does.
    with pytest.raises(torchport.BadArtifactError, match=r"old\.pt2.*checksum mismatch"):
        torchport.NativeModel(path)
    with pytest.raises(torchport.BadArtifactError) as info:
        torchport.NativeModel(path, verify_checksum=False)
    message = str(info.value)
    assert "old.pt2" in message and "compiled with torch 2.12.0+cpu" in message
    assert f"this runtime uses torch {torch.__version__}" in message and "re-export" in message
    proc = run_binary("info", str(path))
    assert proc.returncode == 3 and "checksum mismatch" in proc.stderr


def test_package_for_another_device_is_refused(mlp_formats, tmp_path):
    _, paths = mlp_formats

    def for_cuda(records):
        for name in records:
            if name.endswith("_metadata.json"):
                meta = json.loads(records[name])
                meta["AOTI_DEVICE_KEY"] = "cuda"
                records[name] = json.dumps(meta).encode()

    path = _rewrite(paths["aoti"], tmp_path / "cuda.pt2", for_cuda)
    # The checksum catches the edit first; without it the device check does.
    with pytest.raises(torchport.BadArtifactError, match="checksum mismatch"):
        torchport.NativeModel(path)
    with pytest.raises(torchport.BadArtifactError, match=r"cuda\.pt2.*compiled for device 'cuda', but the model is loaded on 'cpu'"):
        torchport.NativeModel(path, verify_checksum=False)


def test_package_for_a_missing_instruction_set_is_refused(mlp_formats, tmp_path):
    if torch._C._cpu._get_cpu_capability().get("avx512_f", True):
        pytest.skip("this CPU has AVX512: no instruction set to lack")
    _, paths = mlp_formats

    def for_avx512(records):
        for name in records:
            if name.endswith("_metadata.json"):
                meta = json.loads(records[name])
                meta["AOTI_CPU_ISA"] = "AVX512"
                records[name] = json.dumps(meta).encode()

    path = _rewrite(paths["aoti"], tmp_path / "avx512.pt2", for_avx512)
    with pytest.raises(torchport.BadArtifactError, match="compiled for the AVX512 instruction set, which this CPU lacks"):
        torchport.NativeModel(path, verify_checksum=False)


def test_concurrent_runs_from_many_threads_match(cnn_pt2):
    _, path = cnn_pt2
    native = torchport.NativeModel(path, concurrency=4)
    torch.manual_seed(1)
    inputs = [torch.randn(2, 3, 16, 16) for _ in range(8)]
    expected = [native.run(x)[0] for x in inputs]
    results: dict[int, list] = {}
    errors = []

    def worker(k: int) -> None:
        try:
            results[k] = [native.run(inputs[(k + i) % len(inputs)])[0] for i in range(3 * len(inputs))]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k, outs in results.items():
        for i, out in enumerate(outs):
            assert torch.equal(out, expected[(k + i) % len(inputs)]), (k, i)
    with pytest.raises(torchport.BadOptionError, match="concurrency: expected 1 to 256, got 0"):
        torchport.NativeModel(path, concurrency=0)


# ---------------------------------------------------------------------- parity


def test_mlp_parity_in_every_runtime(mlp_formats):
    model, paths = mlp_formats
    rows = {}
    for fmt, path in paths.items():
        report = torchport.verify(path, model=model)
        assert report.ok, f"{fmt}:\n{report}"
        assert report.format == fmt
        rows[fmt] = {r.runtime for r in report.rows}
    assert rows == {"torchscript": {"eager", "torchscript", "native", "binary"},
                    "aoti": {"eager", "aoti", "native", "binary"},
                    "onnx": {"eager", "onnxruntime", "native", "binary"}}
    aoti = torchport.verify(paths["aoti"], model=model)
    assert (aoti.atol, aoti.rtol) == (TOLERANCES["aoti"]["atol"], TOLERANCES["aoti"]["rtol"])
    assert "(aoti) against golden outputs" in str(aoti)


@pytest.mark.parametrize("batch", [1, 5])
def test_cnn_pt2_matches_eager_through_binding_and_binary(cnn_pt2, batch):
    model, path = cnn_pt2
    torch.manual_seed(batch)
    inputs = CNN_CASE.example(batch)
    report = torchport.verify(path, model=model, inputs=inputs, runtimes=("eager", "native", "binary"))
    assert report.reference == "eager"
    assert report.ok, str(report)
    assert {r.runtime for r in report.rows} == {"native", "binary"}
    proc = run_binary("selfcheck", str(path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"]


def test_verify_catches_a_drift_beyond_the_tolerance(cnn_pt2):
    model, path = cnn_pt2
    with torch.no_grad():
        model.fc.bias.add_(1e-2)
    try:
        report = torchport.verify(path, model=model, inputs=CNN_CASE.example(2), runtimes=("eager", "native"))
    finally:
        with torch.no_grad():
            model.fc.bias.sub_(1e-2)
    assert not report.ok
    assert report.rows[0].max_abs_diff > TOLERANCES["aoti"]["atol"]


def test_verify_refuses_runtimes_that_do_not_read_the_format(cnn_pt2):
    _, path = cnn_pt2
    with pytest.raises(torchport.BadOptionError, match=r"\['torchscript'\] do not read aoti artifacts"):
        torchport.verify(path, runtimes=("torchscript",))


def test_cli_exports_a_checkpoint_as_pt2(tmp_path):
    from conftest import run_cli

    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 3, generator=g)
    (tmp_path / "data.csv").write_text(
        "x1,x2,x3,price\n" + "\n".join(f"{a},{b},{c},{2 * a - b + 0.5}" for a, b, c in x.tolist()) + "\n"
    )
    proc = run_cli("train", "mlp", "--csv", str(tmp_path / "data.csv"), "--target", "price", "--epochs", "1",
                   "--seed", "1", "--out", str(tmp_path / "run"), "--no-progress", "--set", "hidden=[16]")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "price.pt2"
    proc = run_cli("export", str(tmp_path / "run" / "checkpoint.pt"), "--out", str(out), "--format", "aoti")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"exported {out} (AOTInductor compile " in proc.stdout
    assert "(aoti) against golden outputs" in proc.stdout and "result: MISMATCH" not in proc.stdout
    assert torchport.NativeModel(out).format == "aoti"
    proc = run_cli("inspect", str(out))
    assert proc.returncode == 0 and "format: aoti (atol=" in proc.stdout
    proc = run_cli("export", str(tmp_path / "run" / "checkpoint.pt"), "--out", str(out), "--format", "tflite")
    assert proc.returncode == 2 and "invalid choice: 'tflite'" in proc.stderr


def test_selfcheck_defaults_to_the_manifest_tolerance_but_may_be_stricter(mlp_formats, tmp_path):
    _, paths = mlp_formats

    def nudge_golden(records):
        golden = torch.load(io.BytesIO(records[GOLDEN_FILE]), weights_only=True)
        golden["outputs"] = [o + 1e-6 for o in golden["outputs"]]  # well within atol 1e-5
        buf = io.BytesIO()
        torch.save(golden, buf)
        records[GOLDEN_FILE] = buf.getvalue()

    path = _rewrite(paths["aoti"], tmp_path / "nudged.pt2", nudge_golden)
    native = torchport.NativeModel(path, verify_checksum=False)
    assert native.selfcheck()["ok"]  # the manifest's tolerance
    assert not native.selfcheck(atol=0.0, rtol=0.0)["ok"]  # the caller's, stricter
    proc = run_binary("selfcheck", str(path))
    assert proc.returncode == 3 and "checksum mismatch" in proc.stderr  # the edit is still caught at load
