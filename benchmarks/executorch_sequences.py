"""ExecuTorch .pte for the zoo's sequence families: export (lowering) seconds,
graph sizes and the largest difference from eager at several batches, through
the torchport C++ runtime.

    .venv/bin/python benchmarks/executorch_sequences.py transformer
    .venv/bin/python benchmarks/executorch_sequences.py rnn --hidden 8 --layers 1 --steps 8 16

The transformer is the zoo's default config (d_model 64, 2 layers) over 64 steps,
exported from a batch-4 example. The rnn is the zoo's LSTM at the given hidden
size and layers, over each of ``--steps`` (ExecuTorch unrolls the recurrence, so
lowering grows with steps x layers). Timings are wall seconds on whatever else
the machine runs; read them as orders of magnitude."""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch

import torchport
from torchport import formats
from torchport.models import build_model

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)


def row(model: torch.nn.Module, steps: int, delegate: str, folder: Path, label: str) -> str:
    torch.manual_seed(1)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torchport.ExportWarning)
        path = torchport.export(model, torch.randn(4, steps, 1), folder / f"{label}_{steps}_{delegate}.pte",
                                format="executorch", delegate=delegate)
    total = time.perf_counter() - start
    info = torchport.read_manifest(path).metadata[formats.COMPILE_KEY]
    native = torchport.NativeModel(path)
    diffs = []
    for batch in (1, 2, 4, 7, 64):
        x = torch.randn(batch, steps, 1)
        with torch.inference_mode():
            expected = model(x)
        diffs.append((native.run(x)[0] - expected).abs().max().item())
    return (f"| {label} | {delegate} | {steps} | {info['seconds']:.1f} | {total:.1f} | {path.stat().st_size // 1024} "
            f"| {info['input_bounds'][0][0]} | {max(diffs):.2g} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("family", choices=("transformer", "rnn"))
    ap.add_argument("--delegates", nargs="+", default=list(formats.DELEGATES))
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--steps", type=int, nargs="+", default=[8, 16])
    args = ap.parse_args()
    print("| model | delegate | steps | lowering s | export s (all checks) | .pte KB | batch bound | max abs diff vs eager, b=1,2,4,7,64 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for delegate in args.delegates:
            if args.family == "transformer":
                torch.manual_seed(0)
                print(row(build_model("transformer", {}).eval(), 64, delegate, Path(tmp), "transformer"), flush=True)
                continue
            for steps in args.steps:
                torch.manual_seed(0)
                model = build_model("rnn", {"hidden": args.hidden, "layers": args.layers}).eval()
                print(row(model, steps, delegate, Path(tmp), f"rnn lstm h{args.hidden} l{args.layers}"), flush=True)


if __name__ == "__main__":
    main()
