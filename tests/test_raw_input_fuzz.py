"""Seeded corruption of raw input files (PNG, JPEG, CSV rows and .npz, stored and deflated: bytes flipped, zeroed,
cut) through the C++ readers in a subprocess: every case a tensor or a clean
BadInputError, no crash."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image

import torchport
from test_csv_inputs import RAW_ROWS
from torchport.manifest import FeatureSpec, Manifest, TensorSpec

WORKER = textwrap.dedent("""
    import collections, json, random, sys
    from pathlib import Path
    import torch, torchport
    from torchport.errors import BadInputError
    from torchport.native import load_native
    folder, manifest = Path(sys.argv[1]), load_native().Manifest.from_json(Path(sys.argv[2]).read_text())
    rng, tally = random.Random(0), collections.Counter()
    for seed in sorted(folder.glob("seed.*")):
        data = seed.read_bytes()
        for i in range(150):
            b = bytearray(data)
            how = rng.choice(["flip", "zero", "cut"])
            if how == "cut":
                b = b[: rng.randrange(1, len(b))]
            else:
                for _ in range(rng.randint(1, 8)):
                    b[rng.randrange(len(b))] = 0 if how == "zero" else rng.randrange(256)
            case = folder / f"case{seed.suffix}"
            case.write_bytes(bytes(b))
            try:
                out = load_native().read_input_file(str(case), manifest)
                assert all(isinstance(t, torch.Tensor) for t in (out.values() if isinstance(out, dict) else out))
                tally[seed.suffix + " read"] += 1
            except BadInputError:
                tally[seed.suffix + " refused"] += 1
    print(json.dumps(tally))
""")


def test_corrupted_pictures_csv_rows_and_npz_are_read_or_refused_cleanly(tmp_path):
    g = np.random.default_rng(0)
    Image.fromarray(g.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)).save(tmp_path / "seed.png")
    Image.fromarray(g.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)).save(tmp_path / "seed.jpg")
    (tmp_path / "seed.csv").write_bytes(RAW_ROWS.encode() * 3)
    np.savez(tmp_path / "seed.npz", features=g.random((3, 5), dtype=np.float32))
    np.savez_compressed(tmp_path / "deflated.npz", features=g.random((3, 5), dtype=np.float32))
    (tmp_path / "deflated.npz").rename(tmp_path / "seed.npzc")  # its own tally
    m = Manifest(name="m", inputs=[TensorSpec("features", "float32", ("batch", 5))],
                 outputs=[TensorSpec("p", "float32", ("batch", 2))], created="2026-01-01T00:00:00Z",
                 features=[FeatureSpec("temp"), FeatureSpec("city", "categorical", ("lyon", "nice", "paris")),
                           FeatureSpec("weekday")])
    (tmp_path / "manifest.json").write_text(m.to_json())
    proc = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path), str(tmp_path / "manifest.json")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode} (negative: killed by a signal)\n{proc.stderr[-3000:]}"
    tally = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sum(tally.values()) == 5 * 150, tally
    assert tally.get(".png refused", 0) > 0 and tally.get(".csv refused", 0) > 0, tally
    assert tally.get(".csv read", 0) > 0, tally
    assert tally.get(".npz refused", 0) > 0 and tally.get(".npzc refused", 0) > 0, tally
