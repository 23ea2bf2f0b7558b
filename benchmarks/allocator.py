"""The memory allocator on large activations: glibc's default, glibc with tuned
thresholds (what ``mallopt`` would set, given as glibc's environment
variables), and jemalloc (``LD_PRELOAD``), side by side.

    .venv/bin/python benchmarks/allocator.py [--rounds 3] [--iters 10] [--cache DIR]

Workloads (exported once into ``--cache``, default ``build/bench-cache/allocator``):
a ResNet-18-style CNN at batch 32 (64x64 images: activations of 8 to 33 MB
per layer) and a transformer encoder (d=128, 4 heads, 2 layers) at batch 4,
sequence 1024 (attention scores of 64 MB per layer). Each measurement is a fresh
``torchport-run bench ARTIFACT --threads 1`` process (the C++ runtime without
Python) under one allocator setting; the settings alternate within each round
so noise hits them alike. Reports the median over rounds of the process's p50
per call and of its peak RSS (``wait4``'s ``ru_maxrss``), and their ratios to
glibc's default. jemalloc (Debian ``libjemalloc2``; ``make allocator``
installs it) is skipped, with a message, when absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from formats import ResNet18, _bn_stats  # noqa: E402

import torchport  # noqa: E402
from torchport.native import binary_path  # noqa: E402

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
# What mallopt(M_MMAP_THRESHOLD / M_TRIM_THRESHOLD / M_ARENA_MAX) would set: a
# fixed 32 MiB mmap threshold (glibc's largest; the dynamic one starts at 128 KiB),
# freed heap kept up to 1 GiB instead of returned after every call, 2 arenas.
GLIBC_TUNED = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
               "MALLOC_ARENA_MAX": "2"}


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(128, 4, 512, batch_first=True), 2,
                                         enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 128)
        return self.enc(x)


WORKLOADS = {
    "resnet18 b=32 64x64": (lambda: _bn_stats(ResNet18(), (3, 64, 64)), (32, 3, 64, 64)),
    "transformer b=4 T=1024": (lambda: Encoder().eval(), (4, 1024, 128)),
}


def settings() -> dict[str, dict[str, str]]:
    out = {"glibc default": {}, "glibc tuned": GLIBC_TUNED}
    if Path(JEMALLOC).is_file():
        out["jemalloc"] = {"LD_PRELOAD": JEMALLOC}
    else:
        print(f"jemalloc: skipped ({JEMALLOC} not found; apt-get install libjemalloc2, or make allocator)")
    return out


def prepare(cache: Path) -> dict[str, tuple[Path, Path]]:
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (name, (build, shape)) in enumerate(WORKLOADS.items()):
        artifact, inputs = cache / f"w{i}.pt", cache / f"w{i}.inputs.pt"
        if not artifact.is_file():
            torch.manual_seed(0)
            torchport.export(build(), torch.randn(2, *shape[1:]), artifact, overwrite=True)
        if not inputs.is_file():
            torch.manual_seed(1)
            torch.save([torch.randn(*shape)], inputs)
        out[name] = (artifact, inputs)
    return out


# Linux keeps a process's peak RSS across fork and exec, so a child forked from
# this process (torch loaded) would report at least this process's RSS. A small
# interpreter without site packages forks the measured process instead, and
# reports its wait4 peak.
SPAWN = """import json, os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(json.dumps({"rc": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss}) + "\\n")
"""


def measure(artifact: Path, inputs: Path, env: dict[str, str], iters: int) -> tuple[float, float]:
    """(p50 ms, peak RSS MB) of one torchport-run bench process."""
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", SPAWN, str(binary_path()), "bench", str(artifact),
                           "--threads", "1", "--input", str(inputs), "--iters", str(iters), "--warmup", "2"],
                          capture_output=True, text=True, env={**os.environ, **env})
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    if proc.returncode != 0 or report["rc"] != 0:
        raise SystemExit(f"torchport-run bench failed ({report['rc']}): {proc.stderr}")
    return json.loads(proc.stdout)["p50_ms"], report["maxrss_kb"] / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parents[1] / "build" / "bench-cache" / "allocator")
    args = parser.parse_args()
    work = prepare(args.cache)
    configs = settings()
    p50: dict[tuple[str, str], list[float]] = {}
    rss: dict[tuple[str, str], list[float]] = {}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, (artifact, inputs) in work.items():
            for config, env in configs.items():
                t, m = measure(artifact, inputs, env, args.iters)
                p50.setdefault((name, config), []).append(t)
                rss.setdefault((name, config), []).append(m)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"1 intra-op thread; {args.rounds} alternating rounds of {args.iters} calls per process; load average "
          f"{load:.1f} at start, {os.getloadavg()[0]:.1f} at end\n")
    print("| workload | allocator | p50 ms | p50 ratio | peak RSS MB | RSS ratio |")
    print("|---|---|---|---|---|---|")
    for name in work:
        base_t = statistics.median(p50[(name, "glibc default")])
        base_m = statistics.median(rss[(name, "glibc default")])
        for config in configs:
            t, m = statistics.median(p50[(name, config)]), statistics.median(rss[(name, config)])
            print(f"| {name} | {config} | {t:.2f} | {t / base_t:.2f} | {m:.0f} | {m / base_m:.2f} |")


if __name__ == "__main__":
    main()
