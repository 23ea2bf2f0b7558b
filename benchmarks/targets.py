"""Issue 10's per-model targets in one run: eager, the best bit-exact C++ path,
the best C++ path within stated tolerance, and ONNX Runtime, side by side.

    .venv/bin/python benchmarks/targets.py [--iters-ms 400] [--rounds 3] [--models mlp,cnn,...] [--cache DIR]

For the zoo's MLP, CNN, RNN and transformer encoder (formats.py's models, random
weights, batch-norm statistics set) and a ResNet-18-style CNN (3x64x64), at
batch 1 and 32 with 1 intra-op thread, in one process:

- ``eager``: the PyTorch model called from Python under ``torch.inference_mode()``;
- bit-exact C++ paths: the TorchScript artifact (``optimize="none"``) run by the
  C++ runtime in a C++ loop (``NativeModel.benchmark``), with ``optimize_graph``
  on (``ts``) and off (``ts-nog``);
- paths within a stated tolerance: the ``freeze`` and ``fast`` levels (their
  manifests record 10x the max difference measured at export) and the
  AOTInductor ``.pt2`` (its manifest's tolerance), and the ``.onnx`` run by the
  C++ runtime's ONNX Runtime backend (``onnx``, what ``torchport tune`` can pick),
  all in the C++ loop;
- ``ort``: the ``.onnx`` in ONNX Runtime, called from Python (its Python call
  costs a few microseconds that the C++ loop does not: this favours torchport
  on the smallest models, by at most that much).

Artifacts are exported once into ``--cache`` (default ``build/bench-cache/targets``;
the AOTInductor compiles take 10-60 s each) with ``format="all"`` (TorchScript,
.pt2 and ONNX, checked against each other) plus one file per level. Contenders
alternate within each round; each takes about ``--iters-ms`` of calls per
round. Prints the p50 table, the ratios and each target marked met or not.
Targets: best bit-exact / eager <= 0.7 at batch 1; best within tolerance /
eager <= 0.5 at batch 1; best torchport / ORT <= 1.0 at batch 1 and 32.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from formats import MODELS as FORMAT_MODELS, _bn_stats  # noqa: E402  (sets the Inductor cache dir)

import torch  # noqa: E402

import torchport  # noqa: E402
from torchport.formats import onnxruntime_session, run_onnxruntime  # noqa: E402
from torchport.native import NativeModel  # noqa: E402

MODELS = ["mlp", "cnn", "rnn", "transformer", "resnet18"]
BATCHES = (1, 32)
BIT_EXACT = ("ts", "ts-nog")
TOLERANT = ("freeze", "fast", "aoti", "onnx")


def prepare(name: str, cache: Path) -> tuple[torch.nn.Module, dict[str, Path], tuple[int, ...]]:
    """The eager model and its artifacts (exported on the first run, then reused)."""
    build, shape, dyn = FORMAT_MODELS[name]
    torch.manual_seed(0)
    model = _bn_stats(build(), shape)
    cache.mkdir(parents=True, exist_ok=True)
    # The cache holds the weights too: a rebuilt model has the same seed, but the
    # artifacts must be of this very model.
    weights = cache / f"{name}.state.pt"
    if weights.is_file():
        model.load_state_dict(torch.load(weights))
    paths = {"ts": cache / f"{name}.pt", "aoti": cache / f"{name}.pt2", "onnx": cache / f"{name}.onnx",
             "freeze": cache / f"{name}_freeze.pt", "fast": cache / f"{name}_fast.pt"}
    if not all(p.is_file() for p in paths.values()) or not weights.is_file():
        torch.save(model.state_dict(), weights)
        x = torch.randn(4, *shape)
        start = time.perf_counter()
        torchport.export(model, x, paths["ts"], format="all", dynamic_dims={"x": dyn}, overwrite=True)
        for level in ("freeze", "fast"):
            torchport.export(model, x, paths[level], optimize=level, dynamic_dims={"x": dyn}, overwrite=True)
        print(f"  exported {name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return model.eval(), paths, shape


def tolerance(path: Path) -> str:
    tol = torchport.read_manifest(path).tolerance
    return "bit-exact" if not tol else f"atol {tol['atol']:.0e}" + (f" rtol {tol['rtol']:.0e}" if tol.get("rtol") else "")


def python_p50(call, iters: int) -> float:
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters-ms", type=float, default=400.0, help="time per contender per round (default 400 ms)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--cache", type=Path,
                        default=Path(__file__).resolve().parents[1] / "build" / "bench-cache" / "targets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_start = os.getloadavg()[0]
    rows = []
    for name in args.models.split(","):
        model, paths, shape = prepare(name, args.cache)
        natives = {
            "ts": NativeModel(paths["ts"], threads=1),
            "ts-nog": NativeModel(paths["ts"], threads=1, optimize_graph=False),
            "freeze": NativeModel(paths["freeze"], threads=1),
            "fast": NativeModel(paths["fast"], threads=1),
            "aoti": NativeModel(paths["aoti"], threads=1, concurrency=1),
            "onnx": NativeModel(paths["onnx"], threads=1),  # the C++ runtime's ONNX Runtime backend
        }
        tols = {k: tolerance(paths[k]) for k in ("freeze", "fast", "aoti", "onnx")}
        session = onnxruntime_session(paths["onnx"], threads=1)
        for batch in BATCHES:
            torch.manual_seed(2)
            x = [torch.randn(batch, *shape)]
            with torch.inference_mode():
                calls = {"eager": lambda: model(*x), "ort": lambda: run_onnxruntime(session, x)}
                for call in calls.values():  # warm, and size the rounds
                    call()
                start = time.perf_counter()
                calls["eager"]()
                one_ms = max((time.perf_counter() - start) * 1e3, 1e-3)
            iters = int(min(2000, max(3, args.iters_ms / one_ms)))
            p50s: dict[str, list[float]] = {k: [] for k in ["eager", *natives, "ort"]}
            for _ in range(args.rounds):
                for key in p50s:
                    if key in natives:
                        p50s[key].append(natives[key].benchmark(x, iters=iters, warmup=3)["p50_ms"])
                    else:
                        with torch.inference_mode():  # entered once per round, as a serving loop would
                            calls[key]()
                            p50s[key].append(python_p50(calls[key], iters))
            med = {k: statistics.median(v) for k, v in p50s.items()}
            exact = min(BIT_EXACT, key=lambda k: med[k])
            tolerant = min((*BIT_EXACT, *TOLERANT), key=lambda k: med[k])
            rows.append((name, batch, iters, med, exact, tolerant, tols))
            print(f"  {name} b={batch}: " + ", ".join(f"{k} {v:.4f}" for k, v in med.items()), file=sys.stderr)

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"1 intra-op thread; {args.rounds} alternating rounds of about {args.iters_ms:.0f} ms per contender; load "
          f"average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end\n")
    print("p50 per call (ms):\n")
    print("| model | batch | eager | ts | ts-nog | freeze | fast | aoti | onnx | ort |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, batch, _, med, *_ in rows:
        print(f"| {name} | {batch} | " + " | ".join(f"{med[k]:.4f}" for k in
                                                     ("eager", "ts", "ts-nog", "freeze", "fast", "aoti", "onnx", "ort")) + " |")
    print("\nTargets (ratios of p50; `yes` when met):\n")
    print("| model | batch | best bit-exact / eager (<= 0.7 at b=1) | best within tolerance / eager (<= 0.5 at b=1) "
          "| best torchport / ORT (<= 1.0) |")
    print("|---|---|---|---|---|")
    for name, batch, _, med, exact, tolerant, tols in rows:
        r_exact, r_tol, r_ort = med[exact] / med["eager"], med[tolerant] / med["eager"], med[tolerant] / med["ort"]
        tol_text = "bit-exact" if tolerant in BIT_EXACT else tols[tolerant]
        mark = (lambda r, limit: ("yes" if r <= limit else "no")) if batch == 1 else (lambda r, limit: "-")
        print(f"| {name} | {batch} | {r_exact:.2f} ({exact}) {mark(r_exact, 0.7)} | {r_tol:.2f} ({tolerant}, "
              f"{tol_text}) {mark(r_tol, 0.5)} | {r_ort:.2f} {'yes' if r_ort <= 1.0 else 'no'} |")


if __name__ == "__main__":
    main()
