"""torchport.triton: artifacts into a Triton model repository, checked without a server.

Every config is parsed with Triton's own schema (tritonclient's ModelConfig), every
repository is checked against the layout rules, and every golden request built from a
config runs through the C++ runtime on the repository's model.pt, bit for bit."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import torchport
from torchport.checkpoint import export_checkpoint
from torchport.data import Nodules, Shapes, Signals, load_dataset
from torchport.errors import BadArtifactError, BadOptionError
from torchport.models import FAMILIES
from torchport.train import TrainConfig, train
from torchport.triton import check_layout, check_triton, export_triton, forward_arguments, golden_requests, parse_config

from conftest import CASES, CNN, MLP, run_cli

pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="the triton extra: pip install 'torchport[triton]'")
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parsed(model_dir: Path) -> model_config_pb2.ModelConfig:
    """config.pbtxt read with protobuf's text_format and Triton's ModelConfig, nothing of ours."""
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def type_name(t) -> str:
    return model_config_pb2.DataType.Name(t.data_type)


# ---------------------------------------------------------------------------- the spine's test models


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_spine_models_serve_their_golden_outputs(case, tmp_path):
    torch.manual_seed(0)
    artifact = torchport.export(case.build().eval(), case.example(3), tmp_path / f"{case.name}.pt",
                                dynamic_dims=case.dynamic_dims)
    result = export_triton(artifact, tmp_path / "repo")
    model_dir = tmp_path / "repo" / case.name
    assert result.model_dir == model_dir and result.version == 1
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "config.pbtxt"]
    assert (model_dir / "1" / "model.pt").read_bytes() == artifact.read_bytes()

    c = parsed(model_dir)
    manifest = torchport.read_manifest(artifact)
    assert c.name == case.name and c.platform == "pytorch_libtorch" and c.backend == "pytorch"
    assert c.max_batch_size == 8 and c.HasField("dynamic_batching")
    # Inputs keep forward's argument names (the backend's first convention); outputs <name>__<index>.
    assert [t.name for t in c.input] == manifest.input_names
    assert [t.name for t in c.output] == [f"{n}__{i}" for i, n in enumerate(manifest.output_names)]
    for t, spec in zip(list(c.input) + list(c.output), manifest.inputs + manifest.outputs):
        assert type_name(t) == {"float32": "TYPE_FP32", "int64": "TYPE_INT64"}[spec.dtype]
        rest = [d if isinstance(d, int) else -1 for d in spec.shape[1:]]  # batch dropped, dynamic -1
        assert list(t.dims) == (rest or [1])
        assert t.HasField("reshape") == (not rest) and list(t.reshape.shape) == []

    report = check_triton(model_dir)
    assert report.ok, str(report)
    assert {r.output for r in report.rows} == {t.name for t in c.output}
    assert all(r.max_abs_diff == 0 and r.shape[0] == 3 for r in report.rows)


def test_shapes_types_and_names_in_detail(tmp_path):
    by_name = {c.name: c for c in CASES}
    for name in ("two_in_two_out", "embedding_int64"):
        case = by_name[name]
        artifact = torchport.export(case.build().eval(), case.example(3), tmp_path / f"{name}.pt",
                                    dynamic_dims=case.dynamic_dims)
        export_triton(artifact, tmp_path / "repo")
    two = parsed(tmp_path / "repo" / "two_in_two_out")
    assert [(t.name, list(t.dims)) for t in two.input] == [("left", [5]), ("right", [3])]
    # (B,) -> dims [1] with an empty reshape, as Triton's docs require for a batch-only tensor
    assert [(t.name, list(t.dims), list(t.reshape.shape), t.HasField("reshape")) for t in two.output] == [
        ("output_0__0", [1], [], True), ("output_1__1", [8], [], False)]
    emb = parsed(tmp_path / "repo" / "embedding_int64")
    assert type_name(emb.input[0]) == "TYPE_INT64" and list(emb.input[0].dims) == [-1]  # dynamic sequence


# ---------------------------------------------------------------------------- the zoo


TINY = TrainConfig(epochs=1, batch_size=16, progress=False, tensorboard=False, plots=False, device="cpu")
POSTPROCESS = {"mlp": "softmax", "rnn": "argmax", "unet": "softmax"}


def tiny(family: str):
    name = FAMILIES[family].default_dataset
    ds = {
        "nodules": lambda: Nodules(n=16, size=16),
        "shapes": lambda: Shapes(n=16, size=16),
        "signals": lambda: Signals(n=24, length=16),
    }.get(name, lambda: load_dataset(name))()
    if len(ds) > 200:  # digits: 200 of its 1,797 images are enough to export a trained model
        ds.x, ds.y = ds.x[:200], ds.y[:200]
    return ds


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_zoo_families_serve_their_golden_outputs(family, tmp_path):
    ds = tiny(family)
    run = train(family, ds, out=tmp_path / "run", config=TINY)
    postprocess = POSTPROCESS.get(family, "none")
    artifact = export_checkpoint(run.checkpoint, tmp_path / f"{family}.pt", postprocess=postprocess)
    manifest = torchport.read_manifest(artifact)
    export_triton(artifact, tmp_path / "repo", name=family)
    model_dir = tmp_path / "repo" / family
    c = parsed(model_dir)
    assert c.max_batch_size == 8 and [t.name for t in c.input] == [f"{ds.input_name}__0"]
    (out,) = c.output
    assert out.name == f"{manifest.output_names[0]}__0"
    # A classifier's scores get the label file; argmax labels, masks and regressions do not.
    classifier = ds.task == "classification" and postprocess != "argmax"
    assert bool(out.label_filename) == classifier
    if classifier:
        assert (model_dir / "labels.txt").read_text().splitlines() == list(ds.labels)
        assert list(out.dims) == [len(ds.labels)]
    if postprocess == "argmax":
        assert type_name(out) == "TYPE_INT64" and list(out.dims) == [1] and out.HasField("reshape")
    report = check_triton(model_dir)
    assert report.ok, str(report)


# ---------------------------------------------------------------------------- versions


def test_two_versions_are_laid_out_as_triton_expects(mlp_artifact, tmp_path):
    _, artifact = mlp_artifact
    repo = tmp_path / "models"
    first = export_triton(artifact, repo, name="mlp")
    v1 = (repo / "mlp" / "1" / "model.pt")
    before = (v1.read_bytes(), v1.stat().st_mtime_ns, (repo / "mlp" / "config.pbtxt").read_bytes())
    second = export_triton(artifact, repo, name="mlp")
    assert (first.version, second.version) == (1, 2) and not second.config_written
    tree = sorted(str(p.relative_to(repo)) for p in repo.rglob("*"))
    assert tree == ["mlp", "mlp/1", "mlp/1/model.pt", "mlp/2", "mlp/2/model.pt", "mlp/config.pbtxt", "mlp/labels.txt"]
    assert (v1.read_bytes(), v1.stat().st_mtime_ns, (repo / "mlp" / "config.pbtxt").read_bytes()) == before
    c = parsed(repo / "mlp")
    assert c.output[0].label_filename == "labels.txt"
    assert (repo / "mlp" / "labels.txt").read_text() == "a\nb\nc\n"
    config, versions, notes = check_layout(repo / "mlp")
    assert sorted(versions) == [1, 2] and not notes
    report = check_triton(repo / "mlp")
    assert report.ok and report.versions == [1, 2] and {r.version for r in report.rows} == {1, 2}

    with pytest.raises(BadOptionError, match=r"version 2 of '.*mlp' exists .* pass force=True \(--force\)"):
        export_triton(artifact, repo, name="mlp", version=2)
    replaced = export_triton(artifact, repo, name="mlp", version=2, force=True)
    assert replaced.version == 2 and sorted(check_layout(repo / "mlp")[1]) == [1, 2]
    with pytest.raises(BadOptionError, match=r"version: expected >= 1 \(Triton ignores version folders named 0"):
        export_triton(artifact, repo, name="mlp", version=0)
    # Scheduling options change the shared config; the versions stay as they were.
    third = export_triton(artifact, repo, name="mlp", version=7, instances=3, instance_kind="cpu")
    c = parsed(repo / "mlp")
    assert third.config_written and c.instance_group[0].count == 3
    assert model_config_pb2.ModelInstanceGroup.Kind.Name(c.instance_group[0].kind) == "KIND_CPU"
    assert sorted(check_layout(repo / "mlp")[1]) == [1, 2, 7] and check_triton(repo / "mlp").ok


class Linear5(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_concurrent_exports_into_one_new_model_one_wins_the_others_are_told(mlp_artifact, tmp_path):
    import threading
    from torchport.serve import repository as triton_module

    _, artifact = mlp_artifact
    repo = tmp_path / "models"
    barrier = threading.Barrier(4)
    real_write = triton_module._write_version

    def write_together(*args, **kwargs):  # every export has looked and found no version 1
        barrier.wait(timeout=30)
        return real_write(*args, **kwargs)

    results: list = []

    def one() -> None:
        try:
            results.append(export_triton(artifact, repo, name="mlp").version)
        except BadOptionError as e:
            results.append(str(e))

    triton_module._write_version = write_together
    try:
        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        triton_module._write_version = real_write
    wins = [r for r in results if r == 1]
    told = [r for r in results if isinstance(r, str)]
    assert len(wins) == 1 and len(told) == 3, results
    assert all("written by another export" in r or "exists" in r for r in told)
    assert sorted(p.name for p in (repo / "mlp").iterdir()) == ["1", "config.pbtxt", "labels.txt"]
    assert (repo / "mlp" / "1" / "model.pt").read_bytes() == Path(artifact).read_bytes()


def test_versions_and_counts_past_tritons_integer_ranges_are_option_errors(mlp_artifact, tmp_path):
    _, artifact = mlp_artifact
    for options in ({"version": 2**63}, {"max_batch_size": 2**31}, {"instances": 2**31},
                    {"max_queue_delay_us": 2**64}):
        with pytest.raises(BadOptionError, match="Triton's"):
            export_triton(artifact, tmp_path / "models", name="mlp", **options)
    assert not (tmp_path / "models" / "mlp").exists()


def test_a_version_with_another_contract_is_refused(mlp_artifact, tmp_path):
    _, artifact = mlp_artifact
    export_triton(artifact, tmp_path, name="m")
    other = torchport.export(Linear5(), torch.rand(2, 5), tmp_path / "other.pt", metadata={"labels": ["a", "b", "c"]})
    with pytest.raises(BadArtifactError, match=r"version 2 does not fit '.*m/config.pbtxt', which serves every version"
                                               r".*input .*dims: 5.* vs .*dims: 6"):
        export_triton(other, tmp_path, name="m")
    relabelled = torchport.export(MLP(), torch.rand(2, 6), tmp_path / "relabelled.pt", metadata={"labels": ["x", "y", "z"]})
    with pytest.raises(BadArtifactError, match=r"has labels \['x', 'y', 'z'\].*shared by every version.*\['a', 'b', 'c'\]"):
        export_triton(relabelled, tmp_path, name="m")
    with pytest.raises(BadArtifactError, match="max_batch_size 4 vs 8"):
        export_triton(artifact, tmp_path, name="m", max_batch_size=4)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "config.pbtxt", "labels.txt"]


# ---------------------------------------------------------------------------- what Triton cannot serve


class WithInt(nn.Module):
    def forward(self, x: torch.Tensor, k: int = 2) -> torch.Tensor:
        return x * k


class Nested(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        return x, (x + 1, x + 2)


class AsDict(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": x}


class Total(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum()  # () : the batch is gone from the output


def scripted(module: nn.Module, path: Path) -> Path:
    """A plain TorchScript file, without torchport's manifest."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.* say they are deprecated
        torch.jit.save(torch.jit.script(module), str(path))
    return path


def test_refusals_say_why(tmp_path):
    with_int = scripted(WithInt(), tmp_path / "int.pt")  # torchport.export refuses it already
    with pytest.raises(BadArtifactError, match=r"argument 'k'.* int"):  # the runtime's reader says it first
        export_triton(with_int, tmp_path / "repo")
    with pytest.raises(BadArtifactError, match=r"argument 'k'.* int"):  # checked by the runtime's reader first
        forward_arguments(with_int)
    with pytest.raises(BadArtifactError, match=r"structured output whose tensors would need names flattened"):
        export_triton(scripted(Nested(), tmp_path / "nested.pt"), tmp_path / "repo")
    with pytest.raises(BadArtifactError, match=r"returns Dict\[str, Tensor\], a structured output"):
        export_triton(scripted(AsDict(), tmp_path / "dict.pt"), tmp_path / "repo")
    with pytest.raises(BadArtifactError, match=r"is a plain TorchScript file: it states no dtypes or shapes"):
        export_triton(scripted(nn.Linear(3, 2), tmp_path / "plain.pt"), tmp_path / "repo")
    sideways = torchport.export(nn.Linear(3, 2), torch.rand(4, 3), tmp_path / "sideways.pt", dynamic_dims={"input": {1: "batch"}})
    with pytest.raises(BadArtifactError, match=r"input 'input' has its batch at dim 1 .*Triton batches along dim 0"):
        export_triton(sideways, tmp_path / "repo")
    with pytest.raises(BadArtifactError, match=r"output 'output' \(shape \[\]\) does not have the shared 'batch' as dim 0"):
        export_triton(torchport.export(Total(), torch.rand(4, 3), tmp_path / "total.pt"), tmp_path / "repo")
    half = torchport.export(nn.Linear(3, 2).to(torch.bfloat16), torch.rand(4, 3, dtype=torch.bfloat16), tmp_path / "bf16.pt")
    with pytest.raises(BadArtifactError, match=r"input 'input' is bfloat16; Triton's PyTorch backend takes bool, .*float64"):
        export_triton(half, tmp_path / "repo")
    with pytest.raises(BadOptionError, match=r"name: 'a/b' cannot be a model folder"):
        export_triton(sideways, tmp_path / "repo", name="a/b", max_batch_size=0)
    fixed = torchport.export(nn.Linear(3, 2), torch.rand(4, 3), tmp_path / "fixed.pt", dynamic_dims={})
    with pytest.raises(BadOptionError, match=r"dynamic_batching: Triton's dynamic batcher needs max_batch_size > 0"):
        export_triton(fixed, tmp_path / "repo", dynamic_batching=True)
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_without_triton_batching_every_dim_is_stated(tmp_path):
    # A batch at dim 1, and a scalar output: servable with max_batch_size 0.
    sideways = torchport.export(nn.Linear(3, 2), torch.rand(4, 3), tmp_path / "sideways.pt", dynamic_dims={"input": {1: "batch"}})
    export_triton(sideways, tmp_path / "repo", max_batch_size=0)
    total = torchport.export(Total(), torch.rand(4, 3), tmp_path / "total.pt")
    export_triton(total, tmp_path / "repo", max_batch_size=0)
    fixed = torchport.export(nn.Linear(3, 2), torch.rand(4, 3), tmp_path / "fixed.pt", dynamic_dims={})
    export_triton(fixed, tmp_path / "repo")  # no dynamic dims at all: 0 by default
    s, t, f = (parsed(tmp_path / "repo" / n) for n in ("sideways", "total", "fixed"))
    assert s.max_batch_size == 0 and not s.HasField("dynamic_batching")
    assert list(s.input[0].dims) == [4, -1] and list(s.output[0].dims) == [4, 2]
    assert list(t.input[0].dims) == [-1, 3] and list(t.output[0].dims) == [1] and t.output[0].HasField("reshape")
    assert f.max_batch_size == 0 and list(f.input[0].dims) == [4, 3]
    for n in ("sideways", "total", "fixed"):
        report = check_triton(tmp_path / "repo" / n)
        assert report.ok and all(r.requests == 1 for r in report.rows), str(report)


def test_golden_batches_larger_than_max_batch_size_go_in_several_requests(tmp_path):
    torch.manual_seed(0)
    artifact = torchport.export(nn.Linear(4, 2), torch.rand(5, 4), tmp_path / "lin.pt")
    export_triton(artifact, tmp_path / "repo", max_batch_size=2, preferred_batch_sizes=[2])
    (golden,) = golden_requests(tmp_path / "repo" / "lin")
    assert [r["input"].shape[0] for r in golden.requests] == [2, 2, 1]
    assert parsed(tmp_path / "repo" / "lin").dynamic_batching.preferred_batch_size == [2]
    # Rows computed at batch 2 and 1 need not round like the golden batch of 5: within 1e-6.
    report = check_triton(tmp_path / "repo" / "lin", atol=1e-6)
    assert report.ok and report.rows[0].requests == 3 and report.rows[0].shape == [5, 2], str(report)
    assert report.rows[0].max_abs_diff <= 1e-6
    assert any("golden batch (5) is larger than max_batch_size 2, so it went in 3 requests" in n for n in report.notes)


# ---------------------------------------------------------------------------- the check catches broken repositories


def test_the_check_catches_broken_repositories(mlp_artifact, tmp_path):
    _, artifact = mlp_artifact
    model_dir = export_triton(artifact, tmp_path, name="m").model_dir
    config = model_dir / "config.pbtxt"
    good = config.read_text()

    config.write_text(good.replace("max_batch_size: 8", "max_batch_size: 8\nmax_batch: 3"))
    with pytest.raises(BadArtifactError, match=r"does not parse against Triton's ModelConfig schema: .*max_batch"):
        parse_config(config)
    config.write_text(good.replace("TYPE_FP32", "TYPE_BF16", 1))
    with pytest.raises(BadArtifactError, match=r"input 'x': data_type TYPE_BF16 is not one the PyTorch backend converts"):
        check_triton(model_dir)
    config.write_text(good.replace('name: "m"', 'name: "other"'))
    with pytest.raises(BadArtifactError, match=r"config name 'other' differs from its folder 'm'"):
        check_triton(model_dir)
    config.write_text(good.replace("dims: [ 6 ]", "dims: [ 7 ]"))
    with pytest.raises(BadArtifactError, match=r"1/model.pt' does not fit .* input 'x': .*dims: 6.* vs .*dims: 7"):
        check_triton(model_dir)
    config.write_text(good)
    (model_dir / "labels.txt").write_text("a\nb\n")
    with pytest.raises(BadArtifactError, match=r"has 2 labels, the output 3 scores"):
        check_triton(model_dir)
    (model_dir / "labels.txt").write_text("a\nb\nc\n")
    (model_dir / "2").mkdir()
    with pytest.raises(BadArtifactError, match=r"version folder '.*m/2' has no model.pt"):
        check_triton(model_dir)
    (model_dir / "2").rmdir()
    (model_dir / "02").mkdir()
    assert "folders Triton ignores (not version numbers): ['02']" in check_triton(model_dir).notes
    assert check_triton(model_dir).ok


# ---------------------------------------------------------------------------- the command line and the example


def test_cli_writes_checks_and_refuses(mlp_artifact, tmp_path):
    _, artifact = mlp_artifact
    repo = tmp_path / "models"
    proc = run_cli("triton", str(artifact), "--repo", str(repo), "--name", "mlp", "--instances", "2",
                   "--max-queue-delay-us", "500")
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {repo}/mlp/1/model.pt (version 1)" in proc.stdout
    assert "result: golden outputs reproduced bit for bit" in proc.stdout
    c = parsed(repo / "mlp")
    assert c.instance_group[0].count == 2 and c.dynamic_batching.max_queue_delay_microseconds == 500
    proc = run_cli("triton", "--check", str(repo / "mlp"))
    assert proc.returncode == 0 and "1        output__0  [2, 3]" in proc.stdout, proc.stdout + proc.stderr
    proc = run_cli("triton", str(artifact), "--repo", str(repo), "--name", "mlp", "--version", "1")
    assert proc.returncode == 2 and "version 1 of" in proc.stderr and "--force" in proc.stderr
    proc = run_cli("triton", str(artifact))
    assert proc.returncode == 2 and "expected ARTIFACT --repo DIR" in proc.stderr
    with pytest.raises(BadArtifactError, match=r"'.*nothing' is not a folder; expected REPO/NAME"):
        check_triton(tmp_path / "nothing")  # exit 3 on the command line, as every BadArtifactError
    assert "--max-batch-size B" in run_cli("triton", "--help").stdout


def test_example_client_explains_itself_without_a_server(tmp_path):
    """examples/triton/README.md's commands as a user pastes them, on a demo-like artifact;
    with no Triton server the client says so and exits 69."""
    readme = (ROOT / "examples" / "triton" / "README.md").read_text()
    import re

    commands = [c for block in re.findall(r"```sh\n(.*?)```", readme, flags=re.S) for c in block.splitlines() if c.strip()]
    assert len(commands) == 3 and "client.py" in commands[2]
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / ".venv").symlink_to(sys.prefix)
    torch.manual_seed(0)
    torchport.export(CNN().eval(), torch.rand(4, 3, 16, 16), tmp_path / "runs" / "demo" / "digits_cnn.pt",
                     output_names=["logits"], metadata={"labels": [str(i) for i in range(5)]})
    env = dict(os.environ)
    free = _free_port()
    for cmd in commands:
        cmd = cmd.replace("localhost:8000", f"127.0.0.1:{free}")  # surely nothing listens there
        proc = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, env=env)
        if "client.py" in cmd:
            assert proc.returncode == 69, proc.stdout + proc.stderr
            assert f"no Triton server answers at 127.0.0.1:{free}" in proc.stderr
            assert "Nothing was compared" in proc.stderr and "tritonserver --model-repository=" in proc.stderr
        else:
            assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    c = parsed(tmp_path / "runs" / "triton" / "digits")
    assert c.output[0].name == "logits__0" and c.output[0].label_filename == "labels.txt"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeTriton:
    """A stand-in for tritonserver on 127.0.0.1: the KServe v2 HTTP endpoints client.py uses
    (live, ready, infer with the binary tensor extension), each request served by
    serve_like_triton on torchport's runtime. It proves client.py's side of the wire, not
    Triton's; `perturb` makes it answer wrongly."""

    NUMPY = {"BOOL": "bool", "UINT8": "uint8", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
             "FP16": "float16", "FP32": "float32", "FP64": "float64"}

    def __init__(self, model_dir: Path, perturb: bool = False) -> None:
        import json
        import re
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import numpy as np

        from torchport.native import NativeModel
        from torchport.triton import forward_arguments, serve_like_triton

        config, versions, _ = check_layout(model_dir)
        models = {str(v): (NativeModel(f), forward_arguments(f)) for v, f in versions.items()}
        name = model_dir.name

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def reply(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, str(v))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                ready = re.fullmatch(rf"/v2/models/{name}/versions/(\d+)/ready", self.path)
                ok = self.path == "/v2/health/live" or (ready is not None and ready.group(1) in models)
                self.reply(200 if ok else 400)

            def do_POST(self) -> None:
                m = re.fullmatch(rf"/v2/models/{name}/versions/(\d+)/infer", self.path)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if m is None or m.group(1) not in models:
                    return self.reply(400)
                split = int(self.headers["Inference-Header-Content-Length"])
                header, data = json.loads(body[:split]), body[split:]
                request, offset = {}, 0
                for i in header["inputs"]:
                    size = i["parameters"]["binary_data_size"]
                    array = np.frombuffer(data[offset:offset + size], dtype=FakeTriton.NUMPY[i["datatype"]])
                    request[i["name"]] = torch.from_numpy(array.reshape(i["shape"]).copy())
                    offset += size
                model, args = models[m.group(1)]
                response = serve_like_triton(config, model, args, request)
                outputs, blobs = [], []
                for t in config.output:
                    x = response[t.name] + (1e-3 if perturb and x_is_float(response[t.name]) else 0)
                    blob = x.contiguous().numpy().tobytes()
                    outputs.append({"name": t.name, "datatype": type_name(t)[len("TYPE_"):], "shape": list(x.shape),
                                    "parameters": {"binary_data_size": len(blob)}})
                    blobs.append(blob)
                head = json.dumps({"model_name": name, "model_version": m.group(1), "outputs": outputs}).encode()
                self.reply(200, head + b"".join(blobs), {"Content-Type": "application/octet-stream",
                                                          "Inference-Header-Content-Length": len(head)})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def x_is_float(t: torch.Tensor) -> bool:
    return t.dtype.is_floating_point


@pytest.mark.parametrize("perturb", [False, True], ids=["faithful", "wrong"])
def test_example_client_compares_a_servers_answers_with_the_golden_outputs(perturb, tmp_path):
    torch.manual_seed(0)
    by_name = {c.name: c for c in CASES}
    case = by_name["two_in_two_out"]  # two inputs, a batch-only output (reshape) and a [batch, 8] one
    artifact = torchport.export(case.build().eval(), case.example(5), tmp_path / "two.pt")
    export_triton(artifact, tmp_path / "repo", max_batch_size=2)  # golden batch 5: three requests
    export_triton(artifact, tmp_path / "repo")
    server = FakeTriton(tmp_path / "repo" / "two", perturb=perturb)
    try:
        # Requests of 2, 2 and 1 rows need not round like the golden batch of 5 (seen: 3e-8).
        proc = subprocess.run([sys.executable, str(ROOT / "examples" / "triton" / "client.py"),
                               str(tmp_path / "repo" / "two"), "--url", server.url, "--atol", "1e-6"],
                              capture_output=True, text=True)
    finally:
        server.close()
    lines = [line for line in proc.stdout.splitlines() if line.startswith("version ")]
    assert len(lines) == 4, proc.stdout + proc.stderr  # 2 versions x 2 outputs
    if perturb:
        assert proc.returncode == 1 and all("MISMATCH" in line for line in lines), proc.stdout
    else:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # Batch 5 served as 2, 2 and 1 rows runs other kernel blockings than the golden batch,
        # so even the plain sum (output_0) is bit-exact on AVX2 CPUs but off by ~5e-7 on
        # AVX-512 ones: within the stated --atol 1e-6, not necessarily bit-exact.
        assert all(line.endswith(("bit-exact", "within tolerance")) for line in lines), proc.stdout
        assert "result: golden outputs reproduced through Triton" in proc.stdout


def test_without_tritonclient_the_export_works_and_the_check_says_what_to_install(mlp_artifact, tmp_path, monkeypatch,
                                                                                 capsys):
    from torchport.cli import triton_export
    from torchport.triton import TritonSchemaUnavailable

    _, artifact = mlp_artifact
    monkeypatch.setitem(sys.modules, "tritonclient.grpc", None)  # as if only the base package were installed
    assert triton_export(str(artifact), str(tmp_path), name="m") is None
    err = capsys.readouterr().err
    assert "not checked: reading config.pbtxt needs Triton's schema from tritonclient" in err
    assert "pip install 'torchport[triton]'" in err
    assert (tmp_path / "m" / "1" / "model.pt").is_file() and (tmp_path / "m" / "config.pbtxt").is_file()
    with pytest.raises(TritonSchemaUnavailable, match="pip install 'torchport\\[triton\\]'"):
        check_triton(tmp_path / "m")
    with pytest.raises(TritonSchemaUnavailable):  # a second version must be compared with the config
        export_triton(artifact, tmp_path, name="m")
