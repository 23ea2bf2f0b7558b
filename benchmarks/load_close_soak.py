"""Load/close soak per format: load a model, run it once, drop it, many times;
resident memory, open file descriptors and the folders in TMPDIR must stay flat.

    .venv/bin/python benchmarks/load_close_soak.py [--cycles 1000] [--formats torchscript,aoti,executorch]
    .venv/bin/python benchmarks/load_close_soak.py --load-time 30   # cost of the reader's checks on load

Each format runs in its own interpreter with a private TMPDIR. After 20 warm-up
cycles it records RSS, fds and TMPDIR entries, runs --cycles more and reports the
growth; it exits 1 if any fd or temporary folder is left, or RSS grew 1% or more.

--load-time N times N loads per format with the checksum verified and without
(verify_checksum=False), alternating, in one process: the difference is what
hashing the payload and the manifest costs; the structure checks (zip names, the
.pte walk) run in both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import torchport

FORMATS = {"torchscript": ".pt", "aoti": ".pt2", "executorch": ".pte"}

CHILD = r"""
import gc, json, os, sys, torch, torchport
path, cycles = sys.argv[1], int(sys.argv[2])
tmp = os.environ["TMPDIR"]
x = torch.randn(2, 32)
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
def fds(): return len(os.listdir("/proc/self/fd"))
def cycle():
    m = torchport.NativeModel(path); m.run(x); del m
for _ in range(20): cycle()
gc.collect()
r0, f0, t0 = rss(), fds(), len(os.listdir(tmp))
for _ in range(cycles): cycle()
gc.collect()
print(json.dumps({"rss0": r0, "rss1": rss(), "fds": fds() - f0, "tmp": len(os.listdir(tmp)) - t0}))
"""


class Mlp(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(32, 64)
        self.b = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def export_all(folder: Path, formats: list[str]) -> dict[str, Path]:
    torch.manual_seed(0)
    model = Mlp().eval()
    return {f: torchport.export(model, torch.randn(3, 32), folder / f"mlp{FORMATS[f]}", format=f) for f in formats}


def soak(path: Path, cycles: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="soak-tmp-") as tmp:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(cycles)], capture_output=True, text=True,
                              env=dict(os.environ, TMPDIR=tmp))
        if proc.returncode != 0:
            raise SystemExit(f"{path}: soak child failed (rc {proc.returncode}): {proc.stderr[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def load_time(path: Path, n: int) -> tuple[float, float]:
    """Median ms per load with and without checksum verification, alternating."""
    on, off = [], []
    for _ in range(3):
        torchport.NativeModel(path)
    for i in range(2 * n):
        verify = i % 2 == 0
        start = time.perf_counter()
        torchport.NativeModel(path, verify_checksum=verify)
        (on if verify else off).append((time.perf_counter() - start) * 1e3)
    on.sort(), off.sort()
    return on[len(on) // 2], off[len(off) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--load-time", type=int, default=0, metavar="N")
    args = parser.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        paths = export_all(Path(folder), formats)
        for fmt, path in paths.items():
            if args.load_time:
                on, off = load_time(path, args.load_time)
                print(f"{fmt:<12} load {on:8.2f} ms verified, {off:8.2f} ms unverified (median of {args.load_time})")
                continue
            r = soak(path, args.cycles)
            growth = (r["rss1"] - r["rss0"]) / r["rss0"] * 100
            ok = r["fds"] == 0 and r["tmp"] == 0 and growth < 1.0
            failed |= not ok
            print(f"{fmt:<12} {args.cycles} cycles: RSS {r['rss0'] / 2**20:.1f} -> {r['rss1'] / 2**20:.1f} MiB "
                  f"({growth:+.2f}%, {(r['rss1'] - r['rss0']) / args.cycles / 1024:+.1f} KiB/cycle), "
                  f"fds {r['fds']:+d}, TMPDIR entries {r['tmp']:+d}  {'ok' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
