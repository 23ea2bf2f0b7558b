"""Per-call latency of the C++ runtime against Python TorchScript, side by side.

    .venv/bin/python benchmarks/latency.py [--iters 300] [--rounds 5]

For each model, in one process, alternating rounds of: torch.jit.load'ed module
called from Python inside one inference_mode block entered once per round (as a
serving loop would; entering it per call costs microseconds the runtime does not
pay), and torchport.NativeModel.run (C++ through the binding, which enters
InferenceMode in C++). Prints medians and the ratio per model, plus the
first-call latency the torchport-run binary reports with and without warm-up.
A shared, noisy machine: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

import torchport
from torchport.models import Pipeline, build_model, config_for
from torchport.native import binary_path


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(16, 64, batch_first=True)
        self.fc = nn.Linear(64, 4)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(seq)  # (B, T, 64)
        return self.fc(out[:, -1])


def digits_cnn() -> nn.Module:
    """The demo's model family (cnn on 1x8x8 digits) with its normalisation inside."""
    return Pipeline(build_model("cnn", config_for("cnn", (1, 8, 8), 10)), torch.tensor(4.9), torch.tensor(6.0))


MODELS = {
    "digits_cnn b=1": (digits_cnn, torch.rand(1, 1, 8, 8) * 16),
    "digits_cnn b=64": (digits_cnn, torch.rand(64, 1, 8, 8) * 16),
    "mlp b=1": (MLP, torch.rand(1, 64)),
    "lstm b=8 T=32": (LSTM, torch.rand(8, 32, 16)),
}


def per_call_ms(fn, x, iters: int) -> float:
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def binary_bench(path: Path, warmup_runs: int) -> dict:
    out = subprocess.run(
        [str(binary_path()), "bench", str(path), "--iters", "100", "--warmup", str(warmup_runs)],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, "
          f"{args.rounds} alternating rounds of {args.iters} calls each\n")
    print("| model | Python TorchScript p50 (ms) | C++ via binding p50 (ms) | ratio C++/Python | binary first call (ms) | binary p50 (ms) |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, x) in MODELS.items():
            model = build().eval()
            path = torchport.export(model, x, Path(tmp) / (name.replace(" ", "_").replace("=", "") + ".pt"))
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                scripted = torch.jit.load(str(path))
            native = torchport.NativeModel(path)

            with torch.inference_mode():
                for _ in range(20):  # past the profiling executor's first runs
                    scripted(x)
            for _ in range(20):
                native.run(x)
            py, cpp = [], []
            for _ in range(args.rounds):
                with torch.inference_mode():
                    py.append(per_call_ms(scripted, x, args.iters))
                cpp.append(per_call_ms(native.run, x, args.iters))
            ratios = [c / p for c, p in zip(cpp, py)]
            b = binary_bench(path, 10)
            print(f"| {name} | {statistics.median(py):.4f} | {statistics.median(cpp):.4f} | "
                  f"{statistics.median(ratios):.2f} | {b['first_call_ms']:.1f} | {b['p50_ms']:.4f} |")


if __name__ == "__main__":
    main()
