"""Exports one of two models to DEST again and again until killed (driven by
test_export_atomic.py).

    python tests/export_loop.py DEST
"""

from __future__ import annotations

import sys

import torch
from torch import nn

import torchport


def build(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    # About 5 MB of weights, so a save takes long enough to be interrupted.
    return nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.Linear(1024, 8)).eval()


def main(dest: str) -> None:
    models = [build(1), build(2)]
    x = torch.randn(2, 256)
    torchport.export(models[0], x, dest, overwrite=True)
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        torchport.export(models[i % 2], x, dest, overwrite=True)


if __name__ == "__main__":
    main(sys.argv[1])
