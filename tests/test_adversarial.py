"""One adversarial suite, three entry points: every case of tests/hostile.py
(hostile and broken artifacts, input files, options and output paths) goes
through the binding, torchport-run and the torchport command, and each must
report the same error kind, without a signal, a hang, a raw traceback, code
from the file running, or damage to the files the command reads. The surfaces added after it (`.pt2`,
`.pte`, images, `.npz`, profiles, Triton repositories, the Batcher) have their
own table, tests/hostile_surfaces.py, run the same way through the entry points
that accept each surface."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import hostile
import hostile_surfaces
from conftest import run_cli
from torchport.errors import exit_code_of

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("adversarial")
    out, log = folder / "results.json", folder / "cases.log"
    try:
        proc = subprocess.run([sys.executable, str(HERE / "adversarial_worker.py"), str(folder), str(out), str(log)],
                              capture_output=True, text=True, timeout=900, cwd=HERE)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker hung; last case: {log.read_text().splitlines()[-1:]}") from None
    last = log.read_text().splitlines()[-1:] if log.exists() else []
    assert proc.returncode == 0, f"worker exit {proc.returncode} (negative: a signal) at case {last}\n{proc.stderr[-3000:]}"
    return {row["name"]: row for row in json.loads(out.read_text())}


def test_the_table_covers_every_class():
    targets = {}
    for case in hostile.CASES:
        targets[case.target] = targets.get(case.target, 0) + 1
    assert len(hostile.CASES) >= 100, len(hostile.CASES)
    assert len({c.name for c in hostile.CASES}) == len(hostile.CASES), "case names must be unique"
    assert targets["artifact"] >= 50 and targets["input"] >= 25 and targets["option"] >= 8 and targets["output"] >= 5


@pytest.mark.parametrize("case", hostile.CASES, ids=[c.name for c in hostile.CASES])
def test_same_error_kind_through_every_entry_point(results, case):
    row = results[case.name]
    code = exit_code_of(case.kind)
    binding, binary, command = row["binding"], row["binary"], row["command"]
    assert binding["kind"] == case.kind, f"binding: {binding}"
    assert case.message in binding["message"], f"binding message: {binding['message']}"
    assert binary["exit"] == code, f"torchport-run: exit {binary['exit']} (expected {code}): {binary['message']}"
    assert command["exit"] == code, f"torchport: exit {command['exit']} (expected {code}): {command['message']}"
    assert case.message in command["message"], f"torchport message: {command['message']}"
    if "error[" in binary["message"]:  # a library error (not an argument the parser refused)
        assert f"error[{case.kind}]" in binary["message"], binary["message"]
        assert case.message in binary["message"], binary["message"]
    for entry in (binary, command):
        assert "Traceback" not in entry["message"] and "internal error" not in entry["message"], entry["message"]
    assert max(binding["seconds"], binary["seconds"], command["seconds"]) < 10
    assert not row["code_ran"], "a pickle in the file ran code"
    assert row["good_files_intact"], "a file the command reads was changed"


@pytest.mark.parametrize("name", ["artifact is fifo", "manifest NaN in metadata", "input nested 100,000 deep",
                                  "threads 2^32 + 1", "output is the artifact"])
def test_the_installed_command_agrees(results, tmp_path, name):
    """A few cases through the real `torchport` console script, as a user runs it."""
    case = next(c for c in hostile.CASES if c.name == name)
    good = json.loads(json.dumps(results[name]))  # the worker's verdict for the in-process command
    from adversarial_worker import _argv

    torch = pytest.importorskip("torch")
    import torchport

    artifact = torchport.export(torch.nn.Linear(4, 3), torch.rand(2, 4), tmp_path / "good.pt")
    good_input = tmp_path / "in.pt"
    torch.save([torch.rand(3, 4)], good_input)
    o = case.build(tmp_path, hostile.Good(artifact, good_input, artifact.read_bytes()))
    argv = _argv(case, o.get("artifact", artifact), o.get("input", good_input), o.get("output", tmp_path / "o.pt"), o,
                 binary=False)
    proc = run_cli(*argv)
    assert proc.returncode == good["command"]["exit"] == exit_code_of(case.kind), proc.stderr
    assert "Traceback" not in proc.stderr and case.message in proc.stderr


# --- the surfaces added after the TorchScript hardening (issue 23): tests/hostile_surfaces.py --------

@pytest.fixture(scope="module")
def surface_results(tmp_path_factory, mlp_formats, request) -> dict[str, dict]:
    """Every case of hostile_surfaces.CASES through its entry points, derived from the
    session's one compiled `.pt2` and `.pte` (compiling is what costs)."""
    try:
        pte = str(request.getfixturevalue("mlp_pte")[1]["xnnpack"])
    except pytest.skip.Exception:
        pte = "-"  # no ExecuTorch: the .pte cases are left out
    paths = mlp_formats[1]
    try:
        pytest.importorskip("onnxruntime")
        onnx = str(paths["onnx"])
    except pytest.skip.Exception:
        onnx = "-"  # no ONNX Runtime: the .onnx cases are left out
    folder = tmp_path_factory.mktemp("surfaces")
    out, log = folder / "results.json", folder / "cases.log"
    argv = [sys.executable, str(HERE / "adversarial_worker.py"), str(folder), str(out), str(log), "--surfaces",
            str(paths["torchscript"]), str(paths["aoti"]), pte, onnx]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800, cwd=HERE)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker hung; last case: {log.read_text().splitlines()[-1:]}") from None
    last = log.read_text().splitlines()[-1:] if log.exists() else []
    assert proc.returncode == 0, f"worker exit {proc.returncode} (negative: a signal) at case {last}\n{proc.stderr[-3000:]}"
    return {row["name"]: row for row in json.loads(out.read_text())}


def surface_counts_line() -> str:
    """The sentence docs/reliability.md and the README state, built from the table itself."""
    by_surface = hostile_surfaces.counts("surface")
    by_class = hostile_surfaces.counts("cls")
    return (f"{len(hostile_surfaces.CASES)} cases: "
            + ", ".join(f"{s} {by_surface[s]}" for s in hostile_surfaces.SURFACES) + "; by class: "
            + ", ".join(f"{c} {by_class[c]}" for c in hostile_surfaces.CLASSES))


def test_the_surface_table_covers_every_surface_and_the_docs_state_its_counts():
    cases = hostile_surfaces.CASES
    assert len(cases) >= 60 and len({c.name for c in cases}) == len(cases), "60 cases or more, names unique"
    by_surface = hostile_surfaces.counts("surface")
    assert set(by_surface) == set(hostile_surfaces.SURFACES) and min(by_surface.values()) >= 5, by_surface
    assert set(hostile_surfaces.counts("cls")) <= set(hostile_surfaces.CLASSES)
    line = surface_counts_line()
    for doc in (HERE.parent / "docs" / "reliability.md", HERE.parent / "README.md"):
        assert line in doc.read_text(), f"{doc.name} must state the table's counts as: {line}"


def _surface_params():
    for case in hostile_surfaces.CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        yield pytest.param(case, id=case.name, marks=marks)


def _check_entry(case, entry: str, result: dict) -> None:
    code = exit_code_of(case.kind)
    message = result["message"]
    if entry == "binding":
        assert result["kind"] == case.kind, f"binding: {result}"
    else:
        assert result["exit"] == code, f"{entry}: exit {result['exit']} (expected {code}): {message}"
        assert "Traceback" not in message and "internal error" not in message, message
    if entry == "binary":
        assert f"error[{case.kind}]" in message, message
    assert case.message in message, f"{entry} message: {message}"
    # The error names the file at fault (the artifact, input or profile) or the input.
    names = result.get("names", [])
    named = any(n in message for n in names) or "input '" in message or "inputs by name" in message
    assert not names or named, f"{entry} names neither the file nor the input: {message}"
    assert result.get("cpu") is not None and result["cpu"] < 10, f"{entry}: {result.get('cpu')} s of CPU (a hang)"


@pytest.mark.parametrize("case", _surface_params())
def test_every_surface_case_is_a_clean_error_through_its_entry_points(surface_results, case):
    if case.name not in surface_results:
        pytest.skip("a .pte case without ExecuTorch, or a .onnx case without ONNX Runtime")
    row = surface_results[case.name]
    for entry in case.entries:
        _check_entry(case, entry, row[entry])
    assert row["usable"], "after the case the good model no longer ran in the same process"
    assert row["good_files_intact"], "a file the command reads was changed"
