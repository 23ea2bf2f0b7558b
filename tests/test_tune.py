"""`torchport tune`: candidates are kept only within tolerance, the profile it
writes is applied at load (explicit options win), and a stale or hostile
profile is refused by the runtime naming the file and field. No timing is
asserted; iteration counts are tiny."""

from __future__ import annotations

import json
import re

import pytest
import torch

import torchport
from torchport.errors import ArtifactNotFoundError, BadArtifactError, BadOptionError
from torchport.manifest import read_golden
from torchport.native import NativeModel, load_native
from torchport.tune import default_profile_path, tune

from conftest import MLP, run_binary, run_cli


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    torch.manual_seed(0)
    path = torchport.export(MLP().eval(), torch.randn(3, 6), tmp_path_factory.mktemp("tune") / "mlp.pt")
    report = tune(path, batch=2, threads=[1, 2], iters=2, rounds=1, warmup=0)
    return path, report


def test_tune_keeps_only_candidates_within_tolerance_and_writes_the_fastest(tuned):
    path, report = tuned
    # 2 thread counts x (as exported, freeze, fast) x optimize_graph on/off, one file.
    assert len(report.candidates) == 12
    assert {(c.threads, c.optimize, c.optimize_graph) for c in report.candidates} == {
        (t, lv, g) for t in (1, 2) for lv in ("", "freeze", "fast") for g in (True, False)}
    assert report.atol == 0.0 and report.rtol == 0.0  # the manifest's own: bit-exact
    for c in report.candidates:
        assert c.ok == (c.max_abs_diff == 0.0), c  # kept exactly when bit-exact
        assert c.ok or c.why
    assert any(c.optimize == "" and c.ok for c in report.candidates)  # the artifact as exported always passes
    best = report.best
    assert best.ok and best.p50_ms == min(c.p50_ms for c in report.candidates if c.ok)
    assert report.profile == str(default_profile_path(path)) and report.profile.endswith("mlp.profile.json")
    assert "fastest:" in str(report)


def test_loading_with_the_profile_applies_it_and_stays_within_tolerance(tuned):
    path, report = tuned
    best = report.best
    model = NativeModel(path, profile=report.profile)
    o = model.options
    assert (o.threads, o.optimize, o.optimize_graph, o.profile) == (
        best.threads, best.optimize, best.optimize_graph, report.profile)
    assert o.warmup_runs == (2 if best.optimize_graph else 1) and model.warmup_ms > 0
    inputs, outputs = read_golden(path)
    assert torch.equal(model.run(*inputs)[0], outputs[0])  # bit-exact, as tuned
    # An option the caller sets wins over the profile.
    assert NativeModel(path, profile=report.profile, threads=3, warmup_runs=4).options.threads == 3
    assert NativeModel(path).options.profile == ""  # never picked up implicitly


def test_a_looser_tolerance_admits_more_candidates(tuned, tmp_path):
    path, _ = tuned
    report = tune(path, threads=[1], atol=1e-3, profile=tmp_path / "loose.json", iters=1, rounds=1, warmup=0)
    assert all(c.ok and c.max_abs_diff <= 1e-3 for c in report.candidates), [c.why for c in report.candidates]
    assert load_native().Profile.read(str(tmp_path / "loose.json")).atol == 1e-3


def test_a_profile_for_another_artifact_is_refused(tuned, tmp_path):
    path, report = tuned
    torch.manual_seed(1)
    other = torchport.export(MLP().eval(), torch.randn(3, 6), tmp_path / "other.pt")
    with pytest.raises(BadArtifactError, match=r"profile '.*mlp.profile.json': field 'artifact_checksum'.*another artifact"):
        NativeModel(other, profile=report.profile)
    proc = run_binary("info", str(other), "--profile", report.profile)
    assert proc.returncode == 3 and "artifact_checksum" in proc.stderr, proc.stderr
    proc = run_binary("info", str(path), "--profile", report.profile)
    assert proc.returncode == 0 and "applied" in proc.stderr and json.loads(proc.stdout)["name"]


def test_hostile_profiles_are_refused_naming_file_and_field(tuned, tmp_path):
    path, report = tuned
    good = json.loads(open(report.profile).read())
    cases = {
        "threads": ({**good, "threads": -1}, "'threads'"),
        "optimize": ({**good, "optimize": "turbo"}, "'optimize'"),
        "unknown": ({**good, "thraeds": 2}, "unknown field 'thraeds'"),
        "list": ([1, 2], "JSON object"),
    }
    for name, (doc, field) in cases.items():
        bad = tmp_path / f"{name}.json"
        bad.write_text(json.dumps(doc))
        with pytest.raises(BadArtifactError, match=f"profile '{bad}'.*{field}"):
            NativeModel(path, profile=bad)
    with pytest.raises(ArtifactNotFoundError, match="missing.json"):
        NativeModel(path, profile=tmp_path / "missing.json")
    # A profile that picks a sibling which is not there names it.
    aoti = tmp_path / "aoti.json"
    aoti.write_text(json.dumps({**good, "format": "aoti", "optimize": ""}))
    with pytest.raises(ArtifactNotFoundError, match=r"mlp\.pt2"):
        NativeModel(path, profile=aoti)


def test_tune_cli_writes_the_profile_and_refuses_overwriting_the_artifact(tuned, tmp_path):
    path, _ = tuned
    out = tmp_path / "cli.profile.json"
    proc = run_cli("tune", str(path), "--threads", "1", "--iters", "1", "--rounds", "1", "--profile", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "fastest:" in proc.stdout and out.is_file()
    with pytest.raises(BadOptionError, match="is the artifact"):
        tune(path, profile=path)


def test_a_batch_past_what_memory_holds_is_an_option_error_before_allocating(tuned, tmp_path):
    path, _ = tuned
    for batch in (2**63, 2**40):
        with pytest.raises(BadOptionError, match="bytes, more than"):
            tune(path, batch=batch, threads=[1], iters=1, rounds=1, profile=tmp_path / "p.json")
    proc = run_cli("bench", str(path), "--batch", str(2**63))
    assert proc.returncode == 2 and "error[bad_option]" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "p.json").exists()


def test_levels_at_load_are_checked_and_applied(tuned):
    path, _ = tuned
    with pytest.raises(BadOptionError, match="optimize: expected .*got \"turbo\""):
        NativeModel(path, optimize="turbo")
    model = NativeModel(path, optimize="freeze")
    assert model.options.optimize == "freeze"
    inputs, outputs = read_golden(path)
    torch.testing.assert_close(model.run(*inputs)[0], outputs[0], atol=1e-5, rtol=1e-5)


FUZZ = r"""
import json, random, sys
import torch  # before the extension, which binds to torch's libtorch
from torchport import _native
from torchport.errors import BadArtifactError

good = open(sys.argv[1]).read()
rng = random.Random(0)
values = [None, True, -1, 0, 2**31, 2**63, 1e308, float("nan"), "", "x" * 300, [], {}, [[[[]]]], "fast", "aoti"]
refused = parsed = 0
for i in range(1500):
    if i % 3 == 0:  # bytes flipped, inserted or cut
        b = bytearray(good.encode())
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        text = bytes(b[: rng.randint(0, len(b))] if i % 2 else b).decode("utf-8", "replace")
    else:  # a field given a value of another type or out of range
        doc = json.loads(good)
        doc[rng.choice(list(doc) + ["extra"])] = rng.choice(values)
        text = json.dumps(doc)
    try:
        _native.Profile.from_json(text, "fuzz")
        parsed += 1
    except BadArtifactError as e:
        assert "fuzz" in str(e), e
        refused += 1
print(json.dumps({"refused": refused, "parsed": parsed}))
"""


def test_mutated_profiles_are_refused_never_crash(tuned):
    import subprocess
    import sys

    _, report = tuned
    proc = subprocess.run([sys.executable, "-c", FUZZ, report.profile], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["refused"] > 1000 and counts["parsed"] > 0, counts


def test_an_onnx_model_is_tuned_and_tied_to_by_its_whole_file(tmp_path):
    # An ONNX manifest records no payload checksum: the profile ties the model by
    # the runtime's XXH3-128 of the whole file, and the ONNX Runtime backend is a
    # candidate like the other files.
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model, x = MLP().eval(), torch.randn(4, 6)
    onnx = torchport.export(model, x, tmp_path / "m.onnx", format="onnx")
    torchport.export(model, x, tmp_path / "m.pt")
    tie = load_native().profile_checksum(str(onnx))
    assert tie.startswith("xxh3-128-file:") and torchport.read_manifest(onnx).checksum in ("", None)
    report = tune(onnx, threads=[1], iters=5, rounds=1)
    assert {c.format for c in report.candidates} == {"onnx", "torchscript"}, report
    assert report.best is not None and report.best.ok, report
    profile = json.loads(open(report.profile).read())
    assert profile["artifact_checksum"] == tie
    loaded = NativeModel(onnx, profile=report.profile)
    assert loaded.format == report.best.format
    torch.testing.assert_close(loaded.run(x)[0], model(x), atol=1e-5, rtol=1e-4)
    torch.manual_seed(1)  # another export at the same path: the profile no longer ties to it
    torchport.export(MLP().eval(), x, onnx, format="onnx", overwrite=True)
    with pytest.raises(BadArtifactError, match=r"field 'artifact_checksum' is xxh3-128-file:.*tuned for another artifact"):
        NativeModel(onnx, profile=report.profile)


def test_a_profile_number_past_a_doubles_range_is_refused_as_invalid_json(tuned, tmp_path):
    bad = tmp_path / "big.profile.json"
    bad.write_text(re.sub(r'"threads":\s*\d+', '"threads": 1e999', open(tuned[1].profile).read()))
    assert "1e999" in bad.read_text()
    with pytest.raises(BadArtifactError, match=r"big\.profile\.json.*not valid JSON"):
        NativeModel(tuned[0], profile=bad)
