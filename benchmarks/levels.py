"""Optimisation levels side by side: p50 per call and the difference from eager.

    .venv/bin/python benchmarks/levels.py [--threads 1] [--iters 50] [--rounds 5] [--batch 1,32]

For the zoo CNN (digits-sized, conv-BN-ReLU blocks) and a ResNet-18-style model
(64x64 images), exports one artifact per level (``none``, ``freeze``,
``fast``) in a temporary folder, loads each with the C++ runtime and, at each
batch size, times ``NativeModel.benchmark`` (a C++ loop, no Python per call) in
alternating rounds so noise hits the levels alike. Reports the median over
rounds of each round's p50, the ratio to ``none`` and the tolerance each
level's manifest records (10x the measured max |level - eager|).
A shared, noisy machine: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from formats import ResNet18, _bn_stats, zoo  # noqa: E402

import torchport  # noqa: E402
from torchport.native import NativeModel  # noqa: E402
from torchport.optimize import LEVELS  # noqa: E402

MODELS = {
    "cnn": (zoo("cnn", (1, 8, 8), 10), (1, 8, 8)),
    "resnet18": (ResNet18, (3, 64, 64)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batch.split(",")]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} alternating rounds of "
          f"{args.iters} C++ calls; p50 in ms (ratio to none)\n")
    print("| model | batch | " + " | ".join(LEVELS) + " | recorded atol (freeze / fast) |")
    print("|---|---|" + "---|" * len(LEVELS) + "---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            build, shape = MODELS[name]
            torch.manual_seed(0)
            model = _bn_stats(build(), shape)
            models = {}
            for level in LEVELS:
                path = torchport.export(model, torch.randn(2, *shape), Path(tmp) / f"{name}_{level}.pt",
                                        optimize=level)
                models[level] = NativeModel(path)
            atols = [torchport.read_manifest(Path(tmp) / f"{name}_{lv}.pt").tolerance["atol"] for lv in LEVELS[1:]]
            for batch in batches:
                x = [torch.randn(batch, *shape)]
                p50s: dict[str, list[float]] = {lv: [] for lv in LEVELS}
                for _ in range(args.rounds):
                    for level in LEVELS:
                        p50s[level].append(models[level].benchmark(x, iters=args.iters, warmup=5)["p50_ms"])
                med = {lv: statistics.median(v) for lv, v in p50s.items()}
                cells = [f"{med[lv]:.3f} ({med[lv] / med['none']:.2f})" for lv in LEVELS]
                print(f"| {name} | {batch} | " + " | ".join(cells) + f" | {atols[0]:.1e} / {atols[1]:.1e} |")


if __name__ == "__main__":
    main()
