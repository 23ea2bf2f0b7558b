"""One adversarial suite, three entry points: every case of tests/hostile.py
(hostile and broken artifacts, input files, options and output paths) goes
through the binding, torchport-run and the torchport command, and each must
report the same error kind, without a signal, a hang, a raw traceback, code
from the file running, or damage to the files the command reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import hostile
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
