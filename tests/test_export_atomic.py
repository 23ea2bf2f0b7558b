"""Export never leaves a partial artifact: kill the exporting process at random
moments; the destination is always one complete artifact, old or new."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import torchport
from export_loop import build

HERE = Path(__file__).parent


def test_killed_export_leaves_old_or_new_artifact(tmp_path):
    dest = tmp_path / "model.pt"
    probe = torch.randn(3, 256)
    with torch.inference_mode():
        expected = [build(seed)(probe) for seed in (1, 2)]
    rng = random.Random(0)
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, str(HERE / "export_loop.py"), str(dest)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        try:
            proc.wait(timeout=rng.uniform(0.05, 0.6))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        model = torchport.NativeModel(dest)  # loads: complete, checksum intact
        assert model.selfcheck()["ok"], f"attempt {attempt}"
        (got,) = model.run(probe)
        assert any(torch.equal(got, e) for e in expected), f"attempt {attempt}: neither the old nor the new model"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.pt"]
    # A kill between writing and renaming leaves the temporary file, never a partial destination.
    assert all(name.startswith(".model.pt.") and name.endswith(".tmp") for name in leftovers), leftovers


def test_export_refuses_to_overwrite_unless_asked(tmp_path):
    path = torchport.export(torch.nn.Linear(2, 2), torch.randn(1, 2), tmp_path / "m.pt")
    before = path.read_bytes()
    with pytest.raises(torchport.BadOptionError, match="already exists; pass overwrite=True"):
        torchport.export(torch.nn.Linear(2, 3), torch.randn(1, 2), path)
    assert path.read_bytes() == before
    torchport.export(torch.nn.Linear(2, 3), torch.randn(1, 2), path, overwrite=True)
    assert torchport.read_manifest(path).outputs[0].shape == ("batch", 3)
