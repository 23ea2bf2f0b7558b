"""The main job end to end: train a small CNN on scikit-learn's 8x8 digits,
export it, run it in the C++ binary on held-out images, prove parity.

    >>> from torchport.demo import run_demo
    >>> run_demo(out=Path("runs/demo"), epochs=12)
    True
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from torchport.errors import BadOptionError


class DigitsDataset(Dataset):
    """scikit-learn's 1,797 8x8 handwritten digits; raw pixel values 0..16."""

    labels = [str(i) for i in range(10)]

    def __init__(self) -> None:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise BadOptionError("the demo needs scikit-learn (pip install scikit-learn)") from None
        digits = load_digits()
        self.images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
        self.targets = torch.tensor(digits.target, dtype=torch.int64)  # (N,)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.targets[i]


class DigitsCNN(nn.Module):
    """Two conv blocks and an MLP head; normalisation is part of the model, so
    a C++ caller feeds raw pixels."""

    def __init__(self, mean: float, std: float, n_classes: int = 10) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),  # (B, 16, 8, 8)
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),  # (B, 32, 8, 8)
            nn.MaxPool2d(2),  # (B, 32, 4, 4)
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, n_classes))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image - self.mean) / self.std  # (B, 1, 8, 8)
        return self.head(self.features(x))  # (B, n_classes)


def split(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = int(n * val_fraction)
    return order[n_val:], order[:n_val]


def train(model: nn.Module, loader: DataLoader, epochs: int, lr: float) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(loader))
    for epoch in range(epochs):
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for x, y in loader:
            logits = model(x)  # (B, 10)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
        print(f"  epoch {epoch + 1:2d}/{epochs}  loss {loss_sum / total:.4f}  train acc {correct / total:.4f}")


def run_demo(out: Path = Path("runs/demo"), epochs: int = 12, seed: int = 0) -> bool:
    """Train, export, run in C++, compare. True when Python and C++ agree."""
    from torchport.exporter import export
    from torchport.parity import run_binary, verify

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    data = DigitsDataset()
    train_idx, val_idx = split(len(data), 0.2, seed)
    train_images = data.images[train_idx]
    mean, std = train_images.mean().item(), train_images.std().item()  # training split only
    loader = DataLoader(
        Subset(data, train_idx), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )

    print(f"training DigitsCNN on {len(train_idx)} digits, {len(val_idx)} held out, {torch.get_num_threads()} threads")
    model = DigitsCNN(mean, std)
    start = time.perf_counter()
    train(model, loader, epochs, lr=3e-3)
    print(f"  trained in {time.perf_counter() - start:.1f} s")

    model.eval()
    val_x, val_y = data.images[val_idx], data.targets[val_idx]  # (N, 1, 8, 8), (N,)
    with torch.inference_mode():
        py_pred = model(val_x).argmax(1)
    py_acc = (py_pred == val_y).float().mean().item()

    artifact = export(
        model,
        val_x[:4],
        out / "digits_cnn.pt",
        input_names=["image"],
        output_names=["logits"],
        name="digits_cnn",
        overwrite=True,
        metadata={
            "labels": DigitsDataset.labels,
            "preprocessing": {"input": "raw 8x8 pixels, 0..16", "mean": mean, "std": std, "inside_model": True},
            "dataset": "sklearn digits",
            "val_accuracy": py_acc,
        },
    )
    print(f"exported {artifact}")

    (logits,) = run_binary(artifact, [val_x])
    cpp_pred = logits.argmax(1)
    cpp_acc = (cpp_pred == val_y).float().mean().item()
    print(f"held-out accuracy: Python {py_acc:.4f}   C++ (torchport-run) {cpp_acc:.4f}   "
          f"predictions identical: {bool(torch.equal(py_pred, cpp_pred))}")

    report = verify(artifact, model=model, inputs=[val_x])
    print(report)
    agree = report.ok and py_acc == cpp_acc and bool(torch.equal(py_pred, cpp_pred))
    print("demo: Python and C++ agree" if agree else "demo: Python and C++ DISAGREE")
    return agree
