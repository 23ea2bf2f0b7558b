"""What a run logs: per-epoch rows to metrics.csv, metrics.jsonl and TensorBoard, and
the PNG curves at the end."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from torchport.train.config import PRIMARY

class Logger:
    """Per-epoch rows to metrics.csv and metrics.jsonl, and to TensorBoard when installed."""

    def __init__(self, out: Path, tensorboard: bool, fresh: bool) -> None:
        self.out = out
        if fresh:
            for name in ("metrics.csv", "metrics.jsonl"):
                (out / name).unlink(missing_ok=True)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # TensorBoard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self.writer = SummaryWriter(str(out / "tensorboard"))

    def log(self, row: dict[str, Any]) -> None:
        flat = {k: v for k, v in row.items() if not isinstance(v, list)}
        path = self.out / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(flat))
            if new:
                w.writeheader()
            w.writerow(flat)
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for k, v in flat.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    self.writer.add_scalar(k.replace("_", "/", 1), v, row["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_plots(history: list[dict[str, Any]], task: str, labels: list[str], out: Path, *, title: str = "",
                split: str = "validation") -> list[Path]:
    """loss.png and metric.png curves, and confusion.png for classification (needs matplotlib).
    Each carries ``title`` (the run's name); a regression's losses are on a log scale, epochs
    are whole numbers, and the confusion matrix names ``split``, the data it counts."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return []
    metric = PRIMARY[task][0]
    epochs = [r["epoch"] for r in history]
    written = []
    for name, keys in (("loss", ["train_loss", "val_loss"]), ("metric", [f"train_{metric}", f"val_{metric}"])):
        fig = Figure(figsize=(6, 4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for k in keys:
            if all(k in r for r in history):
                ax.plot(epochs, [r[k] for r in history], marker="o", markersize=3, label=k)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name if name == "loss" else metric)
        if task == "regression" and all(r.get(k, 1) > 0 for r in history for k in keys):
            ax.set_yscale("log")  # a regression's loss falls by orders of magnitude
        ax.set_title(f"{title}: {name if name == 'loss' else metric}" if title else (name if name == "loss" else metric))
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=100)
        written.append(out / f"{name}.png")
    if task == "classification" and history and "val_confusion" in history[-1]:
        cm = history[-1]["val_confusion"]
        n = len(labels)
        side = max(4.5, 1.5 + 0.5 * n)
        fig = Figure(figsize=(side + 1.2, side))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        image = ax.imshow(cm, cmap="Blues")
        fig.colorbar(image, ax=ax, label="samples")
        ax.set_xticks(range(n), labels, rotation=45, ha="right")
        ax.set_yticks(range(n), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        total = sum(map(sum, cm))
        ax.set_title(f"{title + ': ' if title else ''}confusion, {split} ({total} samples, epoch {history[-1]['epoch']})",
                     fontsize=10)
        top = max(max(row) for row in cm) or 1
        for i, row in enumerate(cm):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=9, color="white" if v > top / 2 else "black")
        fig.tight_layout()
        fig.savefig(out / "confusion.png", dpi=100)
        written.append(out / "confusion.png")
    return written


