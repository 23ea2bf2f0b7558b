"""Where call 1 after a warm-up at load goes: through the binding or not, and
whether the warm-up's batch size matters.

    .venv/bin/python benchmarks/first_call_excess.py [--repeats 3]

The transformer encoder of first_call.py (T=16, d=32), exported with golden
inputs at batch 1 and at batch 3, is loaded in fresh processes with a warm-up
at load (1 run with ``optimize_graph=False``, 2 with the profiling executor)
and then called at batch 1 on a fresh input: from Python through the binding
(``NativeModel.run``), or in the C++ loop without Python
(``NativeModel.benchmark``'s first call). Reports the median over fresh
processes of call 1, the steady p50, call 1 - p50 and call 1 / p50.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import torchport

sys.path.insert(0, str(Path(__file__).resolve().parent))
from first_call import Encoder  # noqa: E402

PROBE = """
import json, statistics, sys, time, torch
torch.set_num_threads(1)
from torchport.native import NativeModel
m = NativeModel({path!r}, optimize_graph={optimize}, warmup_runs={warmup})
x = torch.rand(1, 16, 32)
if {cpp}:
    r = m.benchmark([x], iters=200, warmup=0)
    print(json.dumps({{"first": r["first_call_ms"], "p50": r["p50_ms"]}}))
else:
    t = []
    for _ in range(201):
        s = time.perf_counter(); m.run(x); t.append((time.perf_counter() - s) * 1e3)
    print(json.dumps({{"first": t[0], "p50": statistics.median(t[1:])}}))
"""

ROWS = [  # label, golden batch, optimize_graph, warm-up runs, C++ loop
    ("optimize_graph=False, warmup 1, binding", 1, False, 1, False),
    ("optimize_graph=False, warmup 1, C++ loop", 1, False, 1, True),
    ("profiling, warmup 2, binding", 1, True, 2, False),
    ("profiling, warmup 2, C++ loop", 1, True, 2, True),
    ("profiling, warmup 2 at batch 3, binding", 3, True, 2, False),
    ("optimize_graph=False, warmup 1 at batch 3, binding", 3, False, 1, False),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per row (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for batch in (1, 3):
            torch.manual_seed(0)
            paths[batch] = torchport.export(Encoder().eval(), torch.rand(batch, 16, 32), Path(tmp) / f"enc{batch}.pt")
        print(f"torch {torch.__version__}, 1 thread; transformer encoder called at batch 1; median of "
              f"{args.repeats} fresh processes per row; ms\n")
        print("| setting | call 1 | steady p50 | call 1 - p50 | call 1 / p50 |")
        print("| --- | --- | --- | --- | --- |")
        results = {label: [] for label, *_ in ROWS}
        for _ in range(args.repeats):  # rows alternate within each repeat
            for label, batch, optimize, warmup, cpp in ROWS:
                code = PROBE.format(path=str(paths[batch]), optimize=optimize, warmup=warmup, cpp=cpp)
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
                results[label].append(json.loads(out.strip().splitlines()[-1]))
        for label, runs in results.items():
            first = statistics.median(r["first"] for r in runs)
            p50 = statistics.median(r["p50"] for r in runs)
            print(f"| {label} | {first:.3f} | {p50:.3f} | {first - p50:.3f} | {first / p50:.1f} |")


if __name__ == "__main__":
    main()
