"""ONNX Runtime through torchport's C++ runtime (its ONNX backend) against ONNX
Runtime through its own Python API and through its C API alone, on the same
.onnx file, 1 intra-op thread, batch 1 and 32, the zoo MLP and CNN.

    .venv/bin/python benchmarks/ort_backend.py [--iters-ms 300] [--rounds 5] [--models mlp,cnn]

Contenders, alternating within each round:

- ``torchport``: ``NativeModel(path, threads=1).benchmark`` (Model::run in a C++
  loop: the input contract, the input wrapped without a copy, ORT's Run, the
  output wrapped without a copy);
- ``ort-python``: ``onnxruntime.InferenceSession.run`` from Python (its Python
  call costs a few microseconds the C++ loops do not);
- ``ort-c``: benchmarks/ort_c_driver.cpp, a C++ loop over ORT's C API alone
  (wrap the input, Run, release), built here with g++; each round is a fresh
  process with its own warm-up.

Prints the p50 per call and the ratios torchport / ort-c and torchport /
ort-python (the issue's target: at most 1.05).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from formats import MODELS as FORMAT_MODELS, _bn_stats  # noqa: E402
from targets import python_p50  # noqa: E402

import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

import torchport  # noqa: E402
from torchport.native import NativeModel  # noqa: E402

BATCHES = (1, 32)


def prepare(name: str, cache: Path) -> tuple[Path, tuple[int, ...]]:
    build, shape, dyn = FORMAT_MODELS[name]
    path = cache / f"{name}.onnx"
    if not path.is_file():
        torch.manual_seed(0)
        model = _bn_stats(build(), shape).eval()
        cache.mkdir(parents=True, exist_ok=True)
        torchport.export(model, torch.randn(4, *shape), path, format="onnx", dynamic_dims={"x": dyn}, overwrite=True)
    return path, shape


def build_driver(cache: Path) -> Path:
    src = ROOT / "benchmarks" / "ort_c_driver.cpp"
    exe = cache / "ort_c_driver"
    if not exe.is_file() or exe.stat().st_mtime < src.stat().st_mtime:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["g++", "-O2", "-std=c++17", "-I", str(ROOT / "cpp" / "src" / "backends"), str(src), "-o",
                        str(exe), "-ldl"], check=True)
    return exe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters-ms", type=float, default=300.0, help="time per contender per round (default 300 ms)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "bench-cache" / "ort_backend")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lib = str(next((Path(ort.__file__).parent / "capi").glob("libonnxruntime.so*")))
    driver = build_driver(args.cache)
    load_start = os.getloadavg()[0]
    rows = []
    for name in args.models.split(","):
        path, shape = prepare(name, args.cache)
        native = NativeModel(path, threads=1, onnxruntime=lib)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        in_name = session.get_inputs()[0].name
        for batch in BATCHES:
            torch.manual_seed(2)
            x = torch.randn(batch, *shape)
            feed = {in_name: x.numpy()}
            session.run(None, feed)
            start = time.perf_counter()
            session.run(None, feed)
            one_ms = max((time.perf_counter() - start) * 1e3, 1e-3)
            iters = int(min(5000, max(5, args.iters_ms / one_ms)))
            p50s: dict[str, list[float]] = {"torchport": [], "ort-c": [], "ort-python": []}
            for _ in range(args.rounds):
                p50s["torchport"].append(native.benchmark([x], iters=iters, warmup=5)["p50_ms"])
                out = subprocess.run([str(driver), lib, str(path), str(iters), "5", str(batch), *map(str, shape)],
                                     capture_output=True, text=True, check=True)
                p50s["ort-c"].append(float(out.stdout))
                p50s["ort-python"].append(python_p50(lambda: session.run(None, feed), iters))
            med = {k: statistics.median(v) for k, v in p50s.items()}
            rows.append((name, batch, iters, med))
            print(f"  {name} b={batch}: " + ", ".join(f"{k} {v:.4f}" for k, v in med.items()), file=sys.stderr)

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}, 1 intra-op thread; {args.rounds} alternating rounds of about "
          f"{args.iters_ms:.0f} ms per contender; load average {load_start:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end\n")
    print("| model | batch | torchport (ms) | ort-c (ms) | ort-python (ms) | torchport / ort-c | torchport / ort-python |")
    print("|---|---|---|---|---|---|---|")
    for name, batch, _, med in rows:
        print(f"| {name} | {batch} | {med['torchport']:.4f} | {med['ort-c']:.4f} | {med['ort-python']:.4f} | "
              f"{med['torchport'] / med['ort-c']:.3f} | {med['torchport'] / med['ort-python']:.3f} |")


if __name__ == "__main__":
    main()
