"""Losses and metrics per task: cross-entropy and accuracy, MSE and MAE, BCE + Dice
and Dice/IoU; ``evaluate`` runs a model over a loader in eval mode."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

def _dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)  # (B, 1, H, W)
    inter = (p * target).sum(dim=(1, 2, 3))
    return (1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)).mean()


def loss_fn(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy, MSE, or BCE + soft Dice for a one-channel mask (cross-entropy for more)."""
    if task == "classification":
        return F.cross_entropy(out, y)  # out (B, K), y (B,)
    if task == "regression":
        return F.mse_loss(out, y)  # (B, K)
    if out.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(out, y) + _dice_loss(out, y)
    return F.cross_entropy(out, y[:, 0].long())


class Meter:
    """Accumulates a task's metrics over batches."""

    def __init__(self, task: str, n_outputs: int) -> None:
        self.task, self.k = task, n_outputs
        self.n, self.loss = 0, 0.0
        self.confusion = torch.zeros(n_outputs, n_outputs, dtype=torch.int64) if task == "classification" else None
        self.sq = self.abs = 0.0
        self.inter = self.union = self.pred_sum = self.true_sum = 0.0

    def add(self, loss: float, out: torch.Tensor, y: torch.Tensor) -> None:
        out, y = out.detach().float().cpu(), y.detach().cpu()
        b = len(y)
        self.n += b
        self.loss += loss * b
        if self.task == "classification":
            idx = y * self.k + out.argmax(1)  # (B,) row = true class, column = predicted
            self.confusion += torch.bincount(idx, minlength=self.k * self.k).reshape(self.k, self.k)
        elif self.task == "regression":
            self.sq += ((out - y) ** 2).mean(1).sum().item()
            self.abs += (out - y).abs().mean(1).sum().item()
        else:
            pred = (out > 0) if out.shape[1] == 1 else F.one_hot(out.argmax(1), out.shape[1]).permute(0, 3, 1, 2).bool()
            true = y.bool()
            self.inter += (pred & true).sum().item()
            self.union += (pred | true).sum().item()
            self.pred_sum += pred.sum().item()
            self.true_sum += true.sum().item()

    def result(self) -> dict[str, Any]:
        r: dict[str, Any] = {"loss": self.loss / max(self.n, 1)}
        if self.task == "classification":
            r["accuracy"] = self.confusion.diag().sum().item() / max(self.n, 1)
            r["confusion"] = self.confusion.tolist()
        elif self.task == "regression":
            r["mse"] = self.sq / max(self.n, 1)
            r["mae"] = self.abs / max(self.n, 1)
        else:
            r["dice"] = 2 * self.inter / max(self.pred_sum + self.true_sum, 1e-9)
            r["iou"] = self.inter / max(self.union, 1e-9)
        return r


def scaled_loss(task: str, out: torch.Tensor, y: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``loss_fn``, on standardised targets when ``model`` (a Pipeline, maybe DDP-wrapped)
    de-standardises its regression output: a target in the thousands trains like one near 1."""
    pipeline = getattr(model, "module", model)
    if task == "regression" and getattr(pipeline, "destandardise", False):
        mean, std = pipeline.target_mean, pipeline.target_std  # (K,)
        return loss_fn(task, (out - mean) / std, (y - mean) / std)
    return loss_fn(task, out, y)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, task: str, n_outputs: int, device: torch.device) -> dict[str, Any]:
    """Loss (on standardised targets for regression) and task metrics (in the data's units)
    of ``model`` over ``loader``, in eval mode."""
    model.eval()
    meter = Meter(task, n_outputs)
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x)
        meter.add(scaled_loss(task, out, y, model).item(), out, y)
    return meter.result()


