"""Soak: many calls with varying batch sizes through the C++ runtime; resident
memory after warm-up must stay flat (growth under 5%).

    .venv/bin/python benchmarks/soak.py [--calls 10000] [--max-batch 64]

Runs the digits CNN (and a two-input model) through torchport.NativeModel,
batch sizes drawn from a seeded generator; warm-up covers every batch size
once. Prints resident memory at intervals and exits 1 if it grew 5% or more.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

import torchport
from latency import digits_cnn  # the demo's model family, shared with the latency benchmark


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(32, 64)
        self.b = torch.nn.Linear(16, 64)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.a(x) + self.b(y))  # (B, 64)
        return h, h.softmax(dim=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--max-batch", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        cnn = torchport.NativeModel(
            torchport.export(digits_cnn(), torch.rand(2, 1, 8, 8) * 16, Path(tmp) / "cnn.pt")
        )
        two = torchport.NativeModel(torchport.export(TwoInputs(), (torch.rand(2, 32), torch.rand(2, 16)), Path(tmp) / "two.pt"))

        def call(batch: int) -> None:
            cnn.run(torch.rand(batch, 1, 8, 8) * 16)
            two.run(torch.rand(batch, 32), torch.rand(batch, 16))

        for batch in range(1, args.max_batch + 1):
            for _ in range(3):
                call(batch)
        start_mb = rss_mb()
        print(f"after warm-up ({3 * args.max_batch} calls per model): {start_mb:.1f} MB resident")
        start = time.perf_counter()
        peak = start_mb
        for i in range(1, args.calls + 1):
            call(rng.randint(1, args.max_batch))
            if i % (args.calls // 10) == 0:
                now = rss_mb()
                peak = max(peak, now)
                print(f"  {i:6d} calls per model: {now:.1f} MB ({(now - start_mb) / start_mb * 100:+.2f}%)")
        end_mb = rss_mb()
    growth = (end_mb - start_mb) / start_mb * 100
    print(f"{args.calls} calls per model (2 models, batch 1..{args.max_batch}) in {time.perf_counter() - start:.1f} s; "
          f"resident {start_mb:.1f} -> {end_mb:.1f} MB ({growth:+.2f}%), peak {peak:.1f} MB")
    if growth >= 5.0:
        print("FAIL: resident memory grew 5% or more after warm-up")
        return 1
    print("ok: growth under 5%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
