"""The formats side by side: TorchScript, AOTInductor .pt2, ONNX (ONNX Runtime) and ExecuTorch .pte per model.

    .venv/bin/python benchmarks/formats.py [MODEL ...] [--iters 50] [--rounds 5] [--table FILE] [--no-executorch]

For each model (the zoo's families with random weights, plus a ResNet-18-style
CNN), in one process: export to every format (torchport.export(format="all"),
which checks each against eager and against each other), the AOTInductor compile
time, the largest differences from eager over the golden inputs and fresh
inputs at batch 1 and 32, and p50 latency at batch 1 and 32 with 1 intra-op
thread: the C++ runtime through the binding for TorchScript and .pt2, ONNX
Runtime's Python API for ONNX, in alternating rounds. ExecuTorch: the .pte
lowered to XNNPACK (and, for its differences only, with delegate "none"), run
by the C++ runtime through the binding; the artifact sizes of each format. Then the throughput of
the .pt2 CNN from 1 and 4 Python threads with Options::concurrency 1 and 4.
A shared, noisy machine: read the ratios more than the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(__file__).resolve().parents[1] / "build" / "inductor-cache"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import torchport  # noqa: E402
from torchport.formats import onnxruntime_session, run_onnxruntime  # noqa: E402
from torchport.models import Pipeline, build_model, config_for  # noqa: E402


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.down(x))


class ResNet18(nn.Module):
    """torchvision's ResNet-18 layout (64-512 channels, 2 blocks per stage)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))  # (B, classes)


def zoo(family: str, shape: tuple[int, ...], outputs: int, task: str = "classification"):
    def build() -> nn.Module:
        model = build_model(family, config_for(family, shape, outputs, task))
        return Pipeline(model, torch.tensor(0.5), torch.tensor(2.0))

    return build


def _bn_stats(model: nn.Module, shape) -> nn.Module:
    # Non-trivial batch-norm statistics, as a trained model has.
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, *shape))
    return model.eval()


# name -> (build, sample shape, dynamic dims of the input)
MODELS = {
    "linear": (zoo("linear", (13,), 1, "regression"), (13,), [0]),
    "mlp": (zoo("mlp", (13,), 3), (13,), [0]),
    "cnn": (zoo("cnn", (1, 8, 8), 10), (1, 8, 8), [0]),
    "cnn3d": (zoo("cnn3d", (1, 32, 32, 32), 2), (1, 32, 32, 32), [0]),
    "unet": (zoo("unet", (1, 32, 32), 4, "segmentation"), (1, 32, 32), [0]),
    # torch.export specializes their time dimension (64), so it is fixed in every format.
    "rnn": (zoo("rnn", (64, 1), 4), (64, 1), [0]),
    "transformer": (zoo("transformer", (64, 1), 4), (64, 1), [0]),
    "resnet18": (ResNet18, (3, 64, 64), [0]),
}
DEFAULT = ["mlp", "cnn", "rnn", "transformer", "resnet18"]
RUNTIMES = ("torchscript", "aoti", "onnxruntime", "executorch")


def max_diffs(expected: torch.Tensor, got: torch.Tensor) -> tuple[float, float]:
    e, g = expected.to(torch.float64), got.to(torch.float64)
    diff = (g - e).abs()
    rel = diff / e.abs().clamp_min(1e-6)  # relative to values not near zero
    return diff.max().item(), rel.max().item()


def measure(name: str, tmp: Path, iters: int, rounds: int, executorch: bool = True) -> dict:
    build, shape, dyn = MODELS[name]
    torch.manual_seed(0)
    model = _bn_stats(build(), shape)
    start = time.perf_counter()
    paths = torchport.export(model, torch.randn(4, *shape), tmp / f"{name}.pt", format="all",
                             dynamic_dims={"x": dyn})
    export_s = time.perf_counter() - start
    compile_s = torchport.read_manifest(paths["aoti"]).metadata["torchport.compile"]["seconds"]
    runners = {
        "torchscript": torchport.NativeModel(paths["torchscript"], threads=1).run,
        "aoti": torchport.NativeModel(paths["aoti"], threads=1, concurrency=1).run,
    }
    session = onnxruntime_session(paths["onnx"], threads=1)
    runners["onnxruntime"] = lambda *xs: run_onnxruntime(session, xs)
    lower_s, limit = None, {}
    if executorch:
        for delegate, key in (("xnnpack", "executorch"), ("none", "executorch_none")):
            paths[key] = torchport.export(model, torch.randn(4, *shape), tmp / f"{name}_{delegate}.pte",
                                          format="executorch", delegate=delegate, dynamic_dims={"x": dyn})
            runners[key] = torchport.NativeModel(paths[key], threads=1, concurrency=1).run
        lower_s = torchport.read_manifest(paths["executorch"]).metadata["torchport.compile"]["seconds"]
        # The batch a .pte planned memory for (XNNPACK plans convolutions for fewer than asked).
        for key in ("executorch", "executorch_none"):
            limit[key] = torchport.read_manifest(paths[key]).metadata["torchport.compile"]["input_bounds"][0][0]
    timed = tuple(r for r in RUNTIMES if r in runners)
    torch.set_num_threads(1)

    diffs = {r: [0.0, 0.0] for r in runners}
    golden_in, _ = torchport.read_golden(paths["torchscript"])
    batches = {"golden": golden_in, 1: [torch.randn(1, *shape)], 32: [torch.randn(32, *shape)]}
    for inputs in batches.values():
        with torch.inference_mode():
            expected = model(*inputs)
        for r, run in runners.items():
            if inputs[0].shape[0] > limit.get(r, inputs[0].shape[0]):
                continue
            got = run(*inputs)[0]
            a, rel = max_diffs(expected, got)
            diffs[r] = [max(diffs[r][0], a), max(diffs[r][1], rel)]

    latency = {}
    for batch in (1, 32):
        inputs = batches[batch]
        timed_b = tuple(r for r in timed if batch <= limit.get(r, batch))
        samples = {r: [] for r in timed_b}
        for r in timed_b:
            for _ in range(5):
                runners[r](*inputs)
        for k in range(rounds):
            order = timed_b if k % 2 == 0 else tuple(reversed(timed_b))
            for r in order:
                for _ in range(iters):
                    t = time.perf_counter()
                    runners[r](*inputs)
                    samples[r].append(time.perf_counter() - t)
        latency[batch] = {r: statistics.median(s) * 1e3 for r, s in samples.items()}
    sizes = {r: Path(paths["onnx" if r == "onnxruntime" else r]).stat().st_size for r in timed}
    return {"model": name, "input": [None, *shape], "export_seconds": round(export_s, 1), "compile_seconds": compile_s,
            "executorch_lower_seconds": lower_s, "executorch_max_batch": limit, "bytes": sizes,
            "max_abs_diff": {r: d[0] for r, d in diffs.items()}, "max_rel_diff": {r: d[1] for r, d in diffs.items()},
            "p50_ms": latency, "paths": {k: str(v) for k, v in paths.items()}}


def concurrency(path: Path, shape, calls: int = 200) -> list[dict]:
    """Calls per second from N Python threads on one .pt2 model, per pool size."""
    out = []
    x = torch.randn(1, *shape)
    torch.set_num_threads(1)
    for pool in (1, 4):
        native = torchport.NativeModel(path, threads=1, concurrency=pool)
        for _ in range(10):
            native.run(x)
        for threads in (1, 4):
            per = calls // threads

            def work() -> None:
                for _ in range(per):
                    native.run(x)

            workers = [threading.Thread(target=work) for _ in range(threads)]
            start = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            seconds = time.perf_counter() - start
            out.append({"concurrency": pool, "threads": threads, "calls_per_s": round(per * threads / seconds, 1)})
    return out


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    isa = torch._inductor.cpu_vec_isa.pick_vec_isa()
    return (f"{cpu}, {os.cpu_count()} logical CPUs ({str(isa).upper()}), {platform.system()} {platform.machine()}, "
            f"torch {torch.__version__}, onnxruntime {__import__('onnxruntime').__version__}, Python {platform.python_version()}")


def table(rows: list[dict]) -> str:
    shown = [k for k in RUNTIMES if any(k in r.get("p50_ms", {}).get(1, {}) for r in rows)] or list(RUNTIMES[:3])
    short = {"torchscript": "ts", "aoti": "aoti", "onnxruntime": "ort", "executorch": "pte"}
    names = " / ".join(short[k] for k in shown)
    lines = [
        f"| model | AOTI compile | max abs diff vs eager ({names}) | max rel diff ({names}) "
        f"| p50 b=1, ms ({names}) | p50 b=32, ms ({names}) | size, KB ({names}) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | | {r['error']} | | | | |")
            continue
        fmt = lambda d: " / ".join(f"{d[k]:.2g}" for k in shown)  # noqa: E731
        lat = lambda b: " / ".join(f"{r['p50_ms'][b][k]:.3f}" if k in r["p50_ms"][b] else "-" for k in shown)  # noqa: E731
        size = " / ".join(f"{r['bytes'][k] / 1024:.0f}" for k in shown)
        lines.append(f"| {r['model']} {r['input']} | {r['compile_seconds']:.0f} s | {fmt(r['max_abs_diff'])} "
                     f"| {fmt(r['max_rel_diff'])} | {lat(1)} | {lat(32)} | {size} |")
    if any("executorch_none" in r.get("max_abs_diff", {}) for r in rows):
        lines += ["", "| model | ExecuTorch lowering | max abs diff vs eager (xnnpack / none) | max rel diff (xnnpack / none) |",
                  "| --- | --- | --- | --- |"]
        for r in rows:
            if "executorch_none" in r.get("max_abs_diff", {}):
                d, q = r["max_abs_diff"], r["max_rel_diff"]
                lines.append(f"| {r['model']} | {r['executorch_lower_seconds']:.0f} s | {d['executorch']:.2g} / "
                             f"{d['executorch_none']:.2g} | {q['executorch']:.2g} / {q['executorch_none']:.2g} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", default=DEFAULT, help=f"from {list(MODELS)} (default {DEFAULT})")
    p.add_argument("--iters", type=int, default=50, help="timed calls per runtime per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--table", default=None, help="also write the Markdown table (and JSON beside it) here")
    p.add_argument("--no-concurrency", action="store_true", help="skip the thread-pool throughput measurement")
    p.add_argument("--no-executorch", action="store_true", help="leave out the ExecuTorch .pte contender")
    args = p.parse_args()
    unknown = set(args.models) - set(MODELS)
    if unknown:
        p.error(f"unknown models {sorted(unknown)}; choose from {list(MODELS)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="torchport-formats-") as tmp:
        for name in args.models:
            try:
                rows.append(measure(name, Path(tmp), args.iters, args.rounds, executorch=not args.no_executorch))
            except torchport.TorchportError as e:
                rows.append({"model": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0]}"})
            print(json.dumps(rows[-1]), flush=True)
        conc = []
        cnn = next((r for r in rows if r["model"] == "cnn" and "paths" in r), None)
        if cnn and not args.no_concurrency:
            conc = concurrency(Path(cnn["paths"]["aoti"]), MODELS["cnn"][1])
            print(json.dumps(conc), flush=True)
    text = f"{machine()}\n\n{table(rows)}\n"
    if conc:
        text += "\n| concurrency (runner pool) | Python threads | calls/s (.pt2 cnn, batch 1) |\n| --- | --- | --- |\n"
        text += "\n".join(f"| {c['concurrency']} | {c['threads']} | {c['calls_per_s']} |" for c in conc) + "\n"
    print(text)
    if args.table:
        Path(args.table).write_text(text)
        for r in rows:
            r.pop("paths", None)
        Path(args.table).with_suffix(".json").write_text(json.dumps({"machine": machine(), "rows": rows, "concurrency": conc}, indent=2))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
