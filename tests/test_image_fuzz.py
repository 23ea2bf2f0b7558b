"""300 structure-aware mutations of PNG and JPEG seeds (byte flips, cuts, grown
Huffman tables, changed frames, spliced bytes) through the C++ image reader, in
subprocesses: each a tensor or a clean BadInputError, 0 signals. The corpus is
kept in build/image-corpus for the ASan gtest (ImageCorpus, `make sanitize`)."""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from hostile_inputs import image_seeds, mutate

CASES = 300
CHUNK = 50
CORPUS = Path(__file__).resolve().parents[1] / "build" / "image-corpus"

WORKER = textwrap.dedent("""
    import collections, json, sys
    from pathlib import Path
    import torch, torchport
    from torchport.errors import BadInputError
    from torchport.native import read_tensor_file
    tally = collections.Counter()
    for name in sys.argv[1:]:
        print(name, flush=True)  # the last name printed is the culprit of a crash
        try:
            tensors = read_tensor_file(name)
            if name.endswith(".img"):
                (t,) = tensors
                assert t.dtype == torch.uint8 and t.dim() == 4 and t.shape[3] == 3
            tally["decoded"] += 1
        except BadInputError as e:
            assert "internal error" not in str(e) and Path(name).name in str(e), str(e)
            tally["refused"] += 1
    print(json.dumps(tally))
""")


def test_300_mutated_images_give_a_tensor_or_a_clean_error_never_a_signal(tmp_path):
    rng = random.Random(2023)
    seeds = image_seeds()
    paths = []
    for i in range(CASES):
        data = mutate(seeds[i % len(seeds)], rng)
        p = tmp_path / f"case{i:03d}.img"
        p.write_bytes(data)
        paths.append(p)
    # And 100 deflated .npz files for the same corpus (the ASan run covers both decoders).
    buf = io.BytesIO()
    np.savez_compressed(buf, x=np.arange(300, dtype=np.float32).reshape(10, 30), y=np.ones(7, np.int64))
    for i in range(100):
        p = tmp_path / f"case{i:03d}.npz"
        p.write_bytes(mutate(buf.getvalue(), rng))
        paths.append(p)
    CORPUS.mkdir(parents=True, exist_ok=True)
    for p in paths:
        shutil.copy(p, CORPUS / p.name)
    totals = {"decoded": 0, "refused": 0}
    for start in range(0, len(paths), CHUNK):
        chunk = [str(p) for p in paths[start:start + CHUNK]]
        proc = subprocess.run([sys.executable, "-c", WORKER, *chunk], capture_output=True, text=True, timeout=300)
        last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "(nothing)"
        assert proc.returncode == 0, f"signal/exit {proc.returncode} on {last}: {proc.stderr[-1500:]}"
        for k, v in json.loads(last).items():
            totals[k] += v
    assert totals["decoded"] + totals["refused"] == CASES + 100
    # The mutations must reach both outcomes, or the fuzz tests nothing.
    assert totals["decoded"] > 20 and totals["refused"] > 100, totals
