"""First and second call after load against the steady p50, per executor setting.

    .venv/bin/python benchmarks/first_call.py [--threads 1]

Each row is measured in a fresh process (the first call in a process also pays
LibTorch's one-time kernel set-up, which is what a fresh server or a
``torchport-run predict`` job sees): load with ``NativeModel(path,
optimize_graph=..., warmup_runs=...)``, time call 1 and call 2, then the p50 of
200 more calls. Also times a whole ``torchport-run predict`` process with and
without ``--optimize-graph no``. Target: calls 1 and 2 <= 1.5x the p50.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import torchport
from torchport.models import Pipeline, build_model, config_for
from torchport.native import binary_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import LSTM, MLP  # noqa: E402  (the latency benchmark's models)

PROBE = """
import json, sys, time, statistics, torch
torch.set_num_threads({threads})
from torchport.native import NativeModel
m = NativeModel({path!r}, optimize_graph={optimize}, warmup_runs={warmup})
x = torch.load({inputs!r})
t = []
for _ in range(202):
    s = time.perf_counter(); m.run(x); t.append((time.perf_counter() - s) * 1e3)
print(json.dumps({{"first": t[0], "second": t[1], "p50": statistics.median(t[2:]), "warmup_ms": m.warmup_ms}}))
"""


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 32)
        return self.enc(x)


MODELS = {
    "digits_cnn b=1": (lambda: Pipeline(build_model("cnn", config_for("cnn", (1, 8, 8), 10)), torch.tensor(4.9),
                                        torch.tensor(6.0)), torch.rand(1, 1, 8, 8) * 16),
    "mlp b=1": (MLP, torch.rand(1, 64)),
    "lstm b=8 T=32": (LSTM, torch.rand(8, 32, 16)),
    "transformer b=1 T=16": (Encoder, torch.rand(1, 16, 32)),
}
SETTINGS = [("profiling (default)", True, 0), ("profiling, warmup_runs=2", True, 2),
            ("optimize_graph=False", False, 0), ("optimize_graph=False, warmup_runs=1", False, 1)]


def probe(path: Path, inputs: Path, optimize: bool, warmup: int, threads: int) -> dict:
    code = PROBE.format(path=str(path), inputs=str(inputs), optimize=optimize, warmup=warmup, threads=threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def predict_process_ms(path: Path, inputs: Path, out: Path, optimize: str, threads: int) -> float:
    start = time.perf_counter()
    subprocess.run([str(binary_path()), "predict", str(path), "--input", str(inputs), "--output", str(out),
                    "--optimize-graph", optimize, "--threads", str(threads)], check=True, capture_output=True)
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per row (median)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} intra-op thread(s); median of {args.repeats} fresh "
          "processes per row; ms\n")
    print("| model | setting | warm-up at load | call 1 | call 2 | steady p50 | call 1 / p50 | call 2 / p50 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    predict_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, x) in MODELS.items():
            stem = name.split()[0]
            path = torchport.export(build().eval(), x, Path(tmp) / f"{stem}.pt")
            inputs = Path(tmp) / f"{stem}_in.pt"
            torch.save(x, inputs)
            for label, optimize, warmup in SETTINGS:
                runs = [probe(path, inputs, optimize, warmup, args.threads) for _ in range(args.repeats)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(f"| {name} | {label} | {med['warmup_ms']:.1f} | {med['first']:.3f} | {med['second']:.3f} | "
                      f"{med['p50']:.3f} | {med['first'] / med['p50']:.1f} | {med['second'] / med['p50']:.1f} |")
            times = {o: statistics.median(predict_process_ms(path, inputs, Path(tmp) / f"{stem}_{o}{i}.pt", o,
                                                             args.threads) for i in range(args.repeats))
                     for o in ("yes", "no")}
            predict_rows.append((name, times))
    print("\n| model | torchport-run predict process, default (ms) | with --optimize-graph no (ms) | ratio |")
    print("| --- | --- | --- | --- |")
    for name, t in predict_rows:
        print(f"| {name} | {t['yes']:.0f} | {t['no']:.0f} | {t['no'] / t['yes']:.2f} |")


if __name__ == "__main__":
    main()
