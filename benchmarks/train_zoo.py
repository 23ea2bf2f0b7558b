"""Trains every model family on its default dataset with the default command (the
recipe in torchport.recipes, no special settings), exports each checkpoint and checks
the artifact's parity against eager through the C++ runtime.

    .venv/bin/python benchmarks/train_zoo.py            # all families, ~5 min on 2 cores
    .venv/bin/python benchmarks/train_zoo.py cnn rnn    # some of them

Writes runs/zoo/<family>/ (run, checkpoint, artifact) and prints a Markdown table;
``--table FILE`` also writes it there (benchmarks/results/train_zoo.md is committed).
Exits 1 when a quality floor is missed or an artifact is not bit-exact.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from torchport.checkpoint import export_checkpoint, pipeline_from_checkpoint, read_checkpoint
from torchport.data import load_dataset
from torchport.models import FAMILIES
from torchport.recipes import recipe_for
from torchport.parity import verify
from torchport.train import PRIMARY, TrainConfig, rebuild, train

BOOK_LINE = (5.3671, -17.3012)  # t_c = w * (0.1 * t_u) + b, Deep Learning with PyTorch ch. 5


def thermometer_line(checkpoint: Path) -> tuple[float, float]:
    """The trained line in the book's units: w per 0.1 unit of t_u, and b."""
    pipeline = rebuild(checkpoint)
    with torch.no_grad():
        b = pipeline(torch.zeros(1, 1)).item()
        w = pipeline(torch.full((1, 1), 10.0)).item() - b  # one unit of t_un = 10 units of t_u
    return w, b


def run(family: str, root: Path) -> dict:
    """The default command, `torchport train FAMILY`, as a user runs it: the recipe and nothing else."""
    dataset = FAMILIES[family].default_dataset
    floor = recipe_for(family, dataset).floor
    out = root / family
    start = time.perf_counter()
    result = train(family, dataset, out=out, config=TrainConfig(progress=False), force=True)
    seconds = time.perf_counter() - start
    inputs = load_dataset(dataset).x[result.val_indices[:64]]  # real held-out samples, raw as C++ feeds them
    artifact = export_checkpoint(result.checkpoint, out / f"{family}.pt", force=True, inputs=inputs)
    ckpt = read_checkpoint(result.checkpoint)  # read once: the model and its task
    report = verify(artifact, model=pipeline_from_checkpoint(ckpt), inputs=[inputs])
    metric = PRIMARY[ckpt.dataset.task][0]
    value = result.metrics[metric]
    row = {"family": family, "dataset": dataset, "epochs": result.epochs, "seconds": round(seconds, 1),
           "metric": metric, "value": value, "floor": floor, "bit_exact": report.bit_exact, "ok": report.ok,
           "runtimes": sorted({r.runtime for r in report.rows}), "artifact": str(artifact)}
    if family == "linear":
        w, b = thermometer_line(result.checkpoint)
        row.update({"w": w, "b": b})
        row["passes"] = abs(w / BOOK_LINE[0] - 1) < 0.01 and abs(b / BOOK_LINE[1] - 1) < 0.01 and report.bit_exact
    else:
        row["passes"] = value >= floor and report.bit_exact
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| family | dataset | epochs | wall time | validation metric | floor | parity through torchport-run |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r["family"] == "linear":
            metric = f"MAE {r['value']:.3f} °C; w = {r['w']:.4f}, b = {r['b']:.3f}"
            floor = f"book: w = {BOOK_LINE[0]}, b = {BOOK_LINE[1]}"
        else:
            metric, floor = f"{r['metric']} {r['value']:.4f}", f"≥ {r['floor']}"
        parity = "bit-exact" if r["bit_exact"] else ("within tolerance" if r["ok"] else "MISMATCH")
        lines.append(f"| {r['family']} | {r['dataset']} | {r['epochs']} | {r['seconds']:.1f} s | {metric} | {floor} | {parity} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("families", nargs="*", default=list(FAMILIES), help="families to run (default: all)")
    p.add_argument("--out", default="runs/zoo")
    p.add_argument("--table", default=None, help="also write the Markdown table (and a JSON file beside it) here")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.out)
    rows = []
    total = time.perf_counter()
    for family in args.families:
        row = run(family, root)
        print(json.dumps(row), flush=True)
        rows.append(row)
    total = time.perf_counter() - total
    text = table(rows)
    # The kernels' reduction order (ISA, threads) decides the last bits of every step, and a long
    # training run amplifies them: the rows compare across machines only with both said.
    footer = (f"\nMeasured with `benchmarks/train_zoo.py` on {platform.machine()} CPU "
              f"({torch.backends.cpu.get_cpu_capability()} kernels), {args.threads} threads, torch "
              f"{torch.__version__}, seed 0, each family's default command (its recipe in torchport.recipes, nothing "
              f"else); total {total:.0f} s. Validation = a seeded 20 % hold-out (thermometer: "
              "all 11 points, as in the book's fit). Parity: 64 raw validation samples through eager, TorchScript, "
              "the binding and the torchport-run binary, compared bit for bit.\n")
    print(text + "\n" + footer)
    if args.table:
        Path(args.table).parent.mkdir(parents=True, exist_ok=True)
        Path(args.table).write_text(text + "\n" + footer)
        Path(args.table).with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(r["passes"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
