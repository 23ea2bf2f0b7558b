"""Seeded property-based fuzzing: 500 corrupted artifacts and 300 corrupted input
files (bytes flipped, zeroed, cut), and 400 structural mutations (the zip
directory's fields, the model's and the golden file's pickles, the manifest's
JSON) through the C++ reader and the Python tools; every one a clean torchport
error or a correct result; zero crashes, zero hangs, zero raw tracebacks (see
fuzz_worker.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

import torchport
from conftest import CNN

HERE = Path(__file__).parent


def test_corrupted_artifacts_and_input_files(tmp_path):
    torch.manual_seed(0)
    model = CNN().eval()
    path = torchport.export(model, torch.randn(2, 3, 16, 16), tmp_path / "cnn.pt")
    torch.save([torch.randn(3, 3, 16, 16)], tmp_path / "inputs.pt")
    log = tmp_path / "fuzz.log"
    cmd = [sys.executable, str(HERE / "fuzz_worker.py"), str(path), str(tmp_path / "inputs.pt"), str(log),
           "--artifacts", "500", "--inputs-cases", "300", "--structure", "400"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=HERE)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"fuzzing hung; last case: {log.read_text().splitlines()[-1:]}") from None
    cases = log.read_text().splitlines() if log.exists() else []
    last = cases[-1] if cases else "none"
    assert proc.returncode == 0, f"exit {proc.returncode} (negative: killed by a signal) at case {last}\n{proc.stderr[-3000:]}"
    tally = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sum(tally["artifacts"].values()) == 500
    assert sum(tally["inputs"].values()) == 300
    assert tally["artifacts"].get("BadArtifactError", 0) > 250, tally
    assert sum(tally["structure (C++ reader)"].values()) == 400
    assert sum(tally["structure (Python tools)"].values()) == 3 * 400
    assert tally["structure (C++ reader)"].get("BadArtifactError", 0) > 200, tally
    print(json.dumps(tally))
