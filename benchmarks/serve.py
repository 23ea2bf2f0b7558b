"""The dynamic batcher against plain calls, with torchport-run serve-bench.

    .venv/bin/python benchmarks/serve.py [--clients 16] [--requests 200] [--max-batch 16] [--max-delay-ms 2]

Exports a small CNN (conv-BN-ReLU blocks on 1x28x28 images, batch dimension
dynamic) and runs ``torchport-run serve-bench`` on it: CLIENTS threads each send
REQUESTS single-image requests, first calling ``Model::run`` themselves, then
through ``torchport::Batcher``. Prints throughput and p50/p99 of both; targets:
throughput >= 3x, batched p99 <= max_delay + 2x one batched call.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import nn

import torchport
from torchport.native import NativeModel, binary_path


def small_cnn() -> nn.Module:
    def block(cin: int, cout: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

    return nn.Sequential(block(1, 16), block(16, 32), block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-delay-ms", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = torchport.export(small_cnn().eval(), torch.rand(2, 1, 28, 28), Path(tmp) / "cnn.pt")
        batch_ms = NativeModel(path).benchmark([torch.rand(args.max_batch, 1, 28, 28)], iters=50)["p50_ms"]
        out = subprocess.run(
            [str(binary_path()), "serve-bench", str(path), "--clients", str(args.clients), "--requests",
             str(args.requests), "--max-batch", str(args.max_batch), "--max-delay-ms", str(args.max_delay_ms),
             "--threads", str(args.threads)],
            capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    print(f"torch {torch.__version__}, {args.threads} intra-op thread(s); {args.clients} clients x "
          f"{args.requests} requests; max_batch {args.max_batch}, max_delay {args.max_delay_ms} ms; "
          f"one batched call of {args.max_batch}: {batch_ms:.2f} ms p50\n")
    print("| serving | requests/s | p50 (ms) | p99 (ms) | mean batch |")
    print("| --- | --- | --- | --- | --- |")
    for side in ("unbatched", "batched"):
        s = r[side]
        print(f"| {side} | {s['requests_per_s']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['mean_batch']:.1f} |")
    print(f"\nthroughput batched / unbatched: {r['throughput_ratio']:.2f}; p99 bound max_delay + 2 x batched call = "
          f"{args.max_delay_ms + 2 * batch_ms:.2f} ms")


if __name__ == "__main__":
    main()
