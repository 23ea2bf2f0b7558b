"""What `torchport.localize` costs on a model that agrees, against `torchport.verify`.

    .venv/bin/python benchmarks/localize_cost.py [--rounds 5]

For each model: export it, then alternate rounds of verify(path, model=model)
(eager, Python TorchScript, the binding, the torchport-run binary) and
localize(path, model=model) in the native and binary runtimes; print the
median wall time of each and the ratio to verify. A shared, noisy machine:
read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import torchport
from torchport.models import Pipeline, build_model, config_for


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(16, 5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(image))  # (B, 5)


def models():
    torch.manual_seed(0)
    yield "mlp (3 linear)", nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                          nn.Linear(256, 10)), torch.randn(4, 64)
    yield "cnn + batch norm", CNN(), torch.randn(4, 3, 16, 16)
    for family, shape in (("transformer", (4, 32, 3)), ("unet", (2, 1, 32, 32))):
        task = "segmentation" if family == "unet" else "classification"
        cfg = config_for(family, shape[1:], 2, task)
        model = Pipeline(build_model(family, cfg), torch.zeros(1), torch.ones(1))
        yield f"zoo {family}", model, torch.randn(*shape)


def timed(fn) -> float:
    start = time.perf_counter()
    result = fn()
    assert result.ok, str(result)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.rounds} rounds\n")
    print("| model | verify (4 runtimes) | localize native | ratio | localize binary | ratio | submodule runs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, x in models():
            model.eval()
            path = torchport.export(model, x, Path(tmp) / "m.pt", overwrite=True)
            times: dict[str, list[float]] = {"verify": [], "native": [], "binary": []}
            runs = 0
            for _ in range(args.rounds):
                times["verify"].append(timed(lambda: torchport.verify(path, model=model)))
                times["native"].append(timed(lambda: torchport.localize(path, model=model)))
                times["binary"].append(timed(lambda: torchport.localize(path, model=model, runtime="binary")))
                runs = torchport.localize(path, model=model).runs
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"| {name} | {med['verify'] * 1e3:.0f} ms | {med['native'] * 1e3:.0f} ms | "
                  f"{med['native'] / med['verify']:.2f}x | {med['binary'] * 1e3:.0f} ms | "
                  f"{med['binary'] / med['verify']:.2f}x | {runs} |")


if __name__ == "__main__":
    main()
