"""Shared fixtures: a zoo of small models covering the layer kinds users ship,
and helpers to run the installed binaries as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from torch import nn

import torchport
from torchport.native import binary_path

torch.manual_seed(0)

# AOTInductor compiles take tens of seconds per model; Inductor's cache under
# build/ keeps them from being repeated from one test run to the next.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(__file__).resolve().parents[1] / "build" / "inductor-cache"))


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 32), nn.GELU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 3)


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),  # (B, 8, 16, 16)
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),  # (B, 16, 8, 8)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, 16)
        )
        self.fc = nn.Linear(16, 5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(image))  # (B, 5)


class LSTMClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 16, num_layers=2, batch_first=True)
        self.fc = nn.Linear(16, 2)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(seq)  # (B, T, 16)
        return self.fc(out[:, -1])  # (B, 2)


class TwoInTwoOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(5, 8)
        self.b = nn.Linear(3, 8)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.a(left) + self.b(right))  # (B, 8)
        return h.sum(dim=1), torch.softmax(h, dim=1)  # (B,), (B, 8)


class Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 12)
        self.fc = nn.Linear(12, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(tokens).mean(dim=1))  # (B, T) int64 -> (B, 4)


@dataclass
class Case:
    name: str
    build: Callable[[], nn.Module]
    example: Callable[[int], tuple[torch.Tensor, ...]]  # batch size -> inputs
    dynamic_dims: dict | None = None


def _bn_trained(model: nn.Module, example) -> nn.Module:
    # Give batch norm non-trivial running statistics, as a trained model has.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(*example(8))
    return model.eval()


CASES = [
    Case("mlp", MLP, lambda b: (torch.randn(b, 6),)),
    Case("cnn_bn", lambda: _bn_trained(CNN(), lambda b: (torch.randn(b, 3, 16, 16),)),
         lambda b: (torch.randn(b, 3, 16, 16),)),
    Case("lstm", LSTMClassifier, lambda b: (torch.randn(b, 7, 4),)),
    Case("two_in_two_out", TwoInTwoOut, lambda b: (torch.randn(b, 5), torch.randn(b, 3))),
    Case("embedding_int64", Embedder, lambda b: (torch.randint(0, 50, (b, 9)),),
         dynamic_dims={"tokens": [0, 1]}),
]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Each test starts with the thread count the last one found: a test (or a
    verify inside it) that sets torch's intra-op threads must not change the
    bits a later test computes in the same pytest worker."""
    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request) -> Case:
    return request.param


@pytest.fixture
def exported(case: Case, tmp_path: Path):
    """(model, artifact path, case) for each zoo model, exported with batch 3."""
    torch.manual_seed(0)
    model = case.build().eval()
    path = torchport.export(model, case.example(3), tmp_path / f"{case.name}.pt", dynamic_dims=case.dynamic_dims)
    return model, path, case


@pytest.fixture(scope="session")
def mlp_artifact(tmp_path_factory) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    model = MLP().eval()
    path = torchport.export(model, torch.randn(2, 6), tmp_path_factory.mktemp("mlp") / "mlp.pt",
                            metadata={"labels": ["a", "b", "c"]})
    return model, path


@pytest.fixture(scope="session")
def mlp_formats(tmp_path_factory):
    """(model, {format: path}) for the MLP exported with format="all" (an AOTInductor
    compile: seconds, so once per session; tests/test_formats.py and others)."""
    torch.manual_seed(0)
    model = MLP().eval()
    paths = torchport.export(model, torch.randn(3, 6), tmp_path_factory.mktemp("formats") / "mlp.pt", format="all",
                             metadata={"labels": ["a", "b", "c"]})
    return model, paths


@pytest.fixture(scope="session")
def mlp_pte(tmp_path_factory):
    """(model, {delegate: path}) for the MLP lowered to XNNPACK and to no delegate
    (tests/test_executorch.py and others); skips without executorch."""
    pytest.importorskip("executorch")
    torch.manual_seed(0)
    model = MLP().eval()
    folder = tmp_path_factory.mktemp("pte")
    paths = {d: torchport.export(model, torch.randn(3, 6), folder / f"mlp_{d}.pte", format="executorch", delegate=d,
                                 metadata={"labels": ["a", "b", "c"]})
             for d in ("xnnpack", "none")}
    return model, paths


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    """Runs the installed `torchport` command."""
    cmd = [str(Path(sys.executable).parent / "torchport"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def run_binary(*args: str, check: bool = False, env=None) -> subprocess.CompletedProcess:
    """Runs the installed torchport-run binary."""
    return subprocess.run([str(binary_path()), *args], capture_output=True, text=True, check=check, env=env)


# Time per test file (setup, call and teardown of its tests, summed), so the
# suite's budget can be tracked file by file; with xdist the controller sees
# every worker's reports. Printed after the run and kept in build/pytest-file-times.txt.
_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report) -> None:
    path = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FILE_SECONDS:
        return
    rows = sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1])
    lines = [f"{seconds:8.1f} s  {path}" for path, seconds in rows]
    out = Path(__file__).resolve().parents[1] / "build" / "pytest-file-times.txt"
    try:
        out.parent.mkdir(exist_ok=True)
        out.write_text("\n".join(lines) + f"\n{sum(_FILE_SECONDS.values()):8.1f} s  total (worker time)\n")
    except OSError:
        pass
    terminalreporter.write_sep("=", "seconds per test file (worker time, top 15)")
    for line in lines[:15]:
        terminalreporter.write_line(line)
