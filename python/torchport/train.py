"""Training: dataset -> seeded split -> DataLoader -> epochs -> checkpoint, logs and plots.

    >>> from torchport.train import TrainConfig, train
    >>> result = train("mlp", "wine", out="runs/wine", config=TrainConfig(epochs=30))
    >>> result.metrics["accuracy"], result.checkpoint
    (0.97..., PosixPath('runs/wine/checkpoint.pt'))

What a run writes under ``out``: ``checkpoint.pt`` (self-describing, rewritten
atomically after every epoch, resumable), ``metrics.csv`` and ``metrics.jsonl``
(one row per epoch), ``tensorboard/`` (when TensorBoard is installed), and at
the end ``loss.png``, ``metric.png`` and, for classification, ``confusion.png``.

Deterministic on CPU for a given seed: the split, the shuffling and dropout are
re-seeded from ``seed`` at every epoch, so a resumed run ends with the same
weights as an uninterrupted one. ``nproc > 1`` trains with DistributedDataParallel
in processes started by torch's elastic launcher (``torch.distributed.run``);
``nnodes > 1`` does the same across machines: every node runs the same command with
its own ``node_rank``, rendezvousing at ``master_addr:master_port`` (node 0). A peer
that stops ends the others with an error after at most ``dist_timeout`` seconds.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import timedelta
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from torchport.checkpoint import CHECKPOINT_FILE, load_checkpoint, pipeline_from_checkpoint, save_checkpoint
from torchport.data import DATASETS, TorchportDataset, load_dataset, split_indices
from torchport.errors import BadOptionError, CheckpointError, ModelRuntimeError, TorchportError
from torchport.models import Pipeline, build_model, config_dict, config_for

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("onecycle", "cosine", "step", "constant")
#: the metric reported per task, and whether higher is better
PRIMARY = {"classification": ("accuracy", True), "regression": ("mae", False), "segmentation": ("dice", True)}
DEFAULT_VAL_FRACTION = 0.2  # for the user's CSV files and image folders
BEST_FILE = "best.pt"  # the checkpoint of the best validation metric so far, beside checkpoint.pt
#: the fields a recipe (torchport.recipes) fills when the caller leaves them None
RECIPE_FIELDS = ("epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "patience")


@dataclass
class TrainConfig:
    """How to train. A field left None takes the recipe for the family and dataset
    (``torchport.recipes``); ``epochs`` None on resume keeps the run's own count, and a
    number extends a finished run."""

    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    optimizer: Optional[str] = None
    schedule: Optional[str] = None
    weight_decay: Optional[float] = None
    #: stop when the validation metric has not improved for this many epochs (None: never)
    patience: Optional[int] = None
    momentum: float = 0.9  # sgd only
    #: held-out fraction; None takes the dataset's default (0.2; 0 for the 11-point thermometer)
    val_fraction: Optional[float] = None
    seed: int = 0
    #: None: cuda when available, else cpu
    device: Optional[str] = None
    workers: int = 0
    amp: bool = False  # mixed precision, CUDA only
    nproc: int = 1  # processes on this node
    nnodes: int = 1  # machines, each running the same command with its own node_rank
    node_rank: int = 0
    master_addr: str = "127.0.0.1"  # node 0's address, reachable from every node
    master_port: Optional[int] = None  # required when nnodes > 1
    #: seconds a collective, or the rendezvous, waits for a missing peer before failing
    dist_timeout: float = 1800.0
    progress: bool = True
    tensorboard: bool = True
    plots: bool = True

    def check(self) -> None:
        """Checks the fields that are set (a field left None is the recipe's, see ``with_recipe``)."""
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise BadOptionError(f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise BadOptionError(f"schedule: expected one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("epochs", "batch_size", "nproc", "nnodes", "patience"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise BadOptionError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.batch_size is not None and self.batch_size % self.nproc:
            raise BadOptionError(f"batch_size {self.batch_size} must be divisible by nproc {self.nproc}")
        if self.batch_size is not None and self.batch_size % (self.nproc * self.nnodes):
            raise BadOptionError(f"batch_size {self.batch_size} must be divisible by nproc x nnodes "
                                 f"({self.nproc} x {self.nnodes})")
        if not 0 <= self.node_rank < self.nnodes:
            raise BadOptionError(f"node_rank: expected 0..{self.nnodes - 1} for {self.nnodes} nodes, got {self.node_rank}")
        if self.nnodes > 1 and self.master_port is None:
            raise BadOptionError("master_port: required with nnodes > 1 (every node gives the same --master-port)")
        if self.master_port is not None and not 1 <= self.master_port <= 65535:
            raise BadOptionError(f"master_port: expected 1..65535, got {self.master_port}")
        if self.dist_timeout <= 0:
            raise BadOptionError(f"dist_timeout: expected > 0 seconds, got {self.dist_timeout}")
        if self.lr is not None and self.lr <= 0:
            raise BadOptionError(f"lr: expected > 0, got {self.lr}")

    def with_recipe(self, family: str, dataset: str) -> "TrainConfig":
        """This config with every recipe field left None taken from the recipe for ``family``
        on ``dataset`` (``torchport.recipes``)."""
        from torchport.recipes import recipe_for

        settings = recipe_for(family, dataset).settings
        return replace(self, **{k: settings[k] for k in RECIPE_FIELDS if getattr(self, k) is None})


@dataclass
class TrainResult:
    out: Path
    checkpoint: Path
    family: str
    dataset: str
    epochs: int
    seconds: float
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    #: the held-out samples' indices in the dataset (the training samples when nothing is held out)
    val_indices: list[int] = field(default_factory=list)
    #: the checkpoint of the best validation metric (None before the first epoch)
    best: Optional[Path] = None


# ---------------------------------------------------------------------------- metrics


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


# ---------------------------------------------------------------------------- logging


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


# ---------------------------------------------------------------------------- the loop


def _optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _schedule(cfg: TrainConfig, opt: torch.optim.Optimizer, total_steps: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, total_steps // 3), gamma=0.1)
    return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)


def pick_device(device: Optional[str]) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except RuntimeError as e:
        raise BadOptionError(f"device: {e}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise BadOptionError("device: cuda was asked for but torch sees no CUDA device")
    return d


def _resolve(data: Union[str, TorchportDataset]) -> TorchportDataset:
    if isinstance(data, TorchportDataset):
        return data
    if isinstance(data, str):
        return load_dataset(data)
    raise BadOptionError(f"data: expected a dataset name or a torchport.data dataset, got {type(data).__name__}")


def train(
    family: str,
    data: Union[str, TorchportDataset],
    *,
    out: Union[str, Path],
    config: Optional[TrainConfig] = None,
    model_options: Optional[dict[str, Any]] = None,
    resume: Union[str, Path, None] = None,
    until: Optional[int] = None,
    force: bool = False,
) -> TrainResult:
    """Train ``family`` on ``data`` (a registered name or a dataset object) and write
    the run to ``out``. ``model_options`` override the family's config fields;
    ``resume`` continues from a checkpoint (or its run folder): its training config
    wins, except device, workers, progress and nproc, and ``config.epochs`` when
    given, which extends a finished run; ``until`` stops after that many epochs in
    all (the checkpoint can be resumed later). An ``out`` that already holds files is
    refused unless ``resume`` or ``force`` (which first removes the files a run writes).

        >>> r = train("cnn", "digits", out="runs/digits", config=TrainConfig(epochs=12))
    """
    dataset = _resolve(data)
    cfg = (config or TrainConfig()).with_recipe(family, dataset.name)
    resume_keeps_epochs = resume is not None and (config is None or config.epochs is None)
    cfg.check()
    if resume_keeps_epochs:
        cfg = replace(cfg, epochs=None)  # the checkpoint's own count
    from torchport.recipes import recipe_for

    model_options = {**recipe_for(family, dataset.name).model_options, **(model_options or {})}
    config_for(family, dataset.input_shape, dataset.n_outputs, dataset.task, **model_options)  # fail early
    out = Path(out)
    if cfg.node_rank == 0 and "WORLD_SIZE" not in os.environ:  # node 0 writes the run; the others may share its folder
        _claim_out(out, resume, force)
    out.mkdir(parents=True, exist_ok=True)
    if (cfg.nproc > 1 or cfg.nnodes > 1) and "WORLD_SIZE" not in os.environ:
        return _launch_distributed(family, dataset, out, cfg, model_options, resume, until)
    return _train_process(family, dataset, out, cfg, model_options, resume, until)


#: what a run writes under ``out``; ``force`` removes these and nothing else
RUN_FILES = (CHECKPOINT_FILE, BEST_FILE, "metrics.csv", "metrics.jsonl", "loss.png", "metric.png", "confusion.png", "tensorboard")


def _claim_out(out: Path, resume, force: bool) -> None:
    """Refuses an ``out`` that holds files unless resuming or forced: a new run must not
    overwrite a checkpoint, nor mix its TensorBoard events with an old run's."""
    if out.exists() and not out.is_dir():
        raise BadOptionError(f"out: '{out}' is a file; expected a run folder")
    if resume is not None or not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        held = sorted(p.name for p in out.iterdir())
        raise BadOptionError(
            f"out: '{out}' already holds files ({', '.join(held[:4])}{', ...' if len(held) > 4 else ''}); "
            f"continue that run with --resume {out} (resume=...), or start over with --force (force=True)"
        )
    for name in RUN_FILES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: ``checkpoint`` holds the last finished epoch (None before the first)."""

    def __init__(self, checkpoint: Optional[Path], epoch: int, epochs: int) -> None:
        self.checkpoint, self.epoch, self.epochs = checkpoint, epoch, epochs
        where = f"'{checkpoint}' holds epoch {epoch} of {epochs}" if checkpoint else "no epoch finished, so no checkpoint"
        super().__init__(f"training interrupted; {where}")


def _train_process(family, dataset: TorchportDataset, out: Path, cfg: TrainConfig, model_options, resume, until) -> TrainResult:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    distributed = world > 1
    device = pick_device(cfg.device)
    if distributed:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        # The timeout bounds how long a collective waits for a peer that stopped.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=cfg.dist_timeout))

    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        if ckpt["family"] != family or ckpt["dataset"]["name"] != dataset.name:
            raise CheckpointError(
                f"checkpoint '{resume}' is {ckpt['family']} on {ckpt['dataset']['name']}, not {family} on {dataset.name}"
            )
        keep = {k: getattr(cfg, k) for k in ("device", "workers", "progress", "nproc", "tensorboard", "plots",
                                             "nnodes", "node_rank", "master_addr", "master_port", "dist_timeout")}
        if cfg.epochs is not None:  # an explicit epoch count extends (or finishes) the run
            if cfg.epochs < ckpt["epoch"]:
                raise BadOptionError(f"epochs: checkpoint '{resume}' has already trained {ckpt['epoch']} epochs; "
                                     f"expected {ckpt['epoch']} or more, got {cfg.epochs}")
            keep["epochs"] = cfg.epochs
        cfg = TrainConfig(**{**ckpt["train_config"], **keep})

    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _fit(family, dataset, out, cfg, model_options, ckpt, until, device, rank, world)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()


def _split(dataset: TorchportDataset, cfg: TrainConfig) -> tuple[list[int], list[int], float]:
    """The seeded train/validation split this run uses, and its validation fraction."""
    val_fraction = cfg.val_fraction
    if val_fraction is None:
        val_fraction = DATASETS[dataset.name].val_fraction if dataset.name in DATASETS else DEFAULT_VAL_FRACTION
    train_idx, val_idx = split_indices(len(dataset), val_fraction, cfg.seed)
    return train_idx, val_idx, val_fraction


def _build(family: str, dataset: TorchportDataset, norm, target_norm, model_options, ckpt) -> tuple[dict[str, Any], Pipeline]:
    """The model config and the pipeline (normalisation, model, target scaling), from the checkpoint when resuming."""
    if ckpt is not None:
        model_cfg = ckpt["config"]
        model = build_model(family, model_cfg)
        model.load_state_dict(ckpt["state_dict"])
    else:
        model_cfg = config_dict(config_for(family, dataset.input_shape, dataset.n_outputs, dataset.task, **(model_options or {})))
        model = build_model(family, model_cfg)
    target = target_norm.tensors() if target_norm is not None else (None, None)
    return model_cfg, Pipeline(model, *norm.tensors(), "none", *target)


def _restore(ckpt, opt, sched, cfg: TrainConfig) -> None:
    """Optimizer and schedule state from a checkpoint. When ``--epochs`` extends the run,
    the schedule keeps its step count but takes the new length (its other state, such
    as OneCycle's phases or cosine's period, comes from the longer schedule)."""
    opt.load_state_dict(ckpt["optimizer"])
    state = ckpt["scheduler"]
    if cfg.epochs != ckpt["train_config"]["epochs"]:
        fresh = sched.state_dict()
        state = {**fresh, **{k: state[k] for k in ("last_epoch", "_step_count", "_last_lr") if k in state}}
    sched.load_state_dict(state)


def _train_epoch(trained: nn.Module, loader: DataLoader, opt, sched, scaler, amp: bool, task: str, n_outputs: int,
                 device: torch.device, epoch: int, show_bar: bool, desc: str) -> dict[str, Any]:
    """One pass over ``loader``; stops on a non-finite loss, naming the epoch and step."""
    trained.train()
    meter = Meter(task, n_outputs)
    metric = PRIMARY[task][0]
    batches = iter(loader)  # the one iterator: it draws the DataLoader's base seed from torch's RNG once
    bar = _progress(batches, len(loader), desc, show_bar)
    for step, (x, y) in enumerate(bar, start=1):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.float16) if amp else nullcontext():
            pred = trained(x)
            loss = scaled_loss(task, pred, y, trained)
        value = loss.item()
        if not math.isfinite(value) and not amp:  # with AMP the scaler skips inf steps on purpose
            raise ModelRuntimeError(
                f"training stopped: the loss is {value} at epoch {epoch + 1}, step {step} of {len(loader)}; "
                "expected a finite loss (lower --lr, or check the data for extreme values)"
            )
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        meter.add(value, pred, y)
        if bar is not batches:
            r = meter.result()
            bar.set_postfix(loss=f"{r['loss']:.4f}", **{metric: f"{r[metric]:.4f}"})
    return meter.result()


def _fit(family, dataset, out, cfg: TrainConfig, model_options, ckpt, until, device, rank, world) -> TrainResult:
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    train_idx, val_idx, val_fraction = _split(dataset, cfg)
    dataset.prepare(train_idx)  # CSV vocabularies: from the training rows only
    norm = dataset.normalization(train_idx)  # the training split only
    target_norm = dataset.target_normalization(train_idx)
    if ckpt is not None and "target_normalization" not in ckpt:
        target_norm = None  # a run started before targets were standardised goes on without
    model_cfg, pipeline = _build(family, dataset, norm, target_norm, model_options, ckpt)
    pipeline = pipeline.to(device)
    trained: nn.Module = pipeline
    if world > 1:
        trained = nn.parallel.DistributedDataParallel(pipeline, device_ids=[device.index] if device.type == "cuda" else None)

    sampler = DistributedSampler(Subset(dataset, train_idx), num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(Subset(dataset, train_idx), batch_size=cfg.batch_size // world, sampler=sampler,
                        num_workers=cfg.workers, pin_memory=device.type == "cuda")
    val_loader = DataLoader(Subset(dataset, val_idx), batch_size=max(cfg.batch_size, 256), num_workers=cfg.workers)

    opt = _optimizer(cfg, pipeline.parameters())
    sched = _schedule(cfg, opt, cfg.epochs * len(loader))
    amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    history: list[dict[str, Any]] = []
    first_epoch = 0
    if ckpt is not None:
        _restore(ckpt, opt, sched, cfg)
        history = list(ckpt["history"])
        first_epoch = ckpt["epoch"]
    last_epoch = min(cfg.epochs, until) if until is not None else cfg.epochs

    writer = rank == 0
    logger = Logger(out, cfg.tensorboard, fresh=ckpt is None) if writer else None
    metric, _ = PRIMARY[dataset.task]
    meta = {
        "family": family,
        "config": model_cfg,
        "dataset": {
            "name": dataset.name,
            "description": dataset.description,
            "task": dataset.task,
            "input_shape": list(dataset.input_shape),
            "input_name": dataset.input_name,
            "labels": list(dataset.labels),
            "features": dataset.feature_specs(),
            **({"image": {"size": list(dataset.image_size)}} if dataset.image_size else {}),
        },
        "normalization": norm.to_dict(),
        **({"target_normalization": target_norm.to_dict()} if target_norm is not None else {}),
        "split": {"val_fraction": val_fraction, "seed": cfg.seed, "n_train": len(train_idx), "n_val": len(val_idx),
                  "held_out": val_fraction > 0},
        "train_config": asdict(cfg),
    }
    done = first_epoch
    metric_higher = PRIMARY[dataset.task][1]
    best = _best_so_far(history, metric, metric_higher)
    try:
        for epoch in range(first_epoch, last_epoch):
            if _stale(history, best, cfg.patience):
                break  # early stopping: resumed after the run had already stopped
            # Re-seeded per epoch: shuffling and dropout do not depend on what ran before,
            # so resuming from a checkpoint reproduces an uninterrupted run.
            sampler.set_epoch(epoch)
            torch.manual_seed(cfg.seed * 1_000_003 + epoch * 7919 + rank)
            train_metrics = _train_epoch(trained, loader, opt, sched, scaler, amp, dataset.task, dataset.n_outputs,
                                         device, epoch, cfg.progress and writer and _is_terminal(),
                                         f"epoch {epoch + 1}/{cfg.epochs}")
            train_metrics = _all_reduce_mean(train_metrics, len(train_idx), world)
            if not writer:
                done = epoch + 1
                continue
            val = evaluate(pipeline, val_loader, dataset.task, dataset.n_outputs, device)
            row = {"epoch": epoch + 1, "lr": sched.get_last_lr()[0], "seconds": round(time.perf_counter() - start, 3)}
            row.update({f"train_{k}": v for k, v in train_metrics.items() if k != "confusion"})
            row.update({f"val_{k}": v for k, v in val.items()})
            history.append(row)
            logger.log(row)
            content = {
                **meta,
                "state_dict": {k: v.detach().cpu() for k, v in pipeline.model.state_dict().items()},
                "metrics": val,
                "history": history,
                "epoch": epoch + 1,
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
            }
            improved = best is None or (val[metric] > best[1] if metric_higher else val[metric] < best[1])
            if improved:
                best = (epoch + 1, val[metric])
                save_checkpoint(out / BEST_FILE, content)
            save_checkpoint(out / CHECKPOINT_FILE, content)
            done = epoch + 1
            if cfg.progress:  # one plain line per saved epoch, on a terminal and in a pipe alike
                print(f"epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.4f}  val loss {val['loss']:.4f}  "
                      f"val {metric} {val[metric]:.4f}{'  (best)' if improved else ''}", file=sys.stderr, flush=True)
            if _stale(history, best, cfg.patience):
                if cfg.progress:
                    print(f"early stop: val {metric} has not improved for {cfg.patience} epochs since epoch {best[0]} "
                          f"(best checkpoint: {out / BEST_FILE})", file=sys.stderr, flush=True)
                break
    except KeyboardInterrupt:
        saved = out / CHECKPOINT_FILE
        raise TrainingInterrupted(saved if done > 0 and saved.is_file() else None, done, cfg.epochs) from None
    finally:
        if logger is not None:
            logger.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # rank 0 has written the last checkpoint
    if writer and cfg.plots and history:
        split = "validation split" if val_fraction > 0 else "training data (nothing held out)"
        write_plots(history, dataset.task, list(dataset.labels), out, title=f"{out.name} ({family} on {dataset.name})",
                    split=split)
    metrics = {k[4:]: v for k, v in history[-1].items() if k.startswith("val_")} if history else {}
    epochs = history[-1]["epoch"] if history else last_epoch
    return TrainResult(out, out / CHECKPOINT_FILE, family, dataset.name, epochs, time.perf_counter() - start, metrics,
                       history, list(val_idx), out / BEST_FILE if best is not None else None)


def _best_so_far(history: list[dict[str, Any]], metric: str, higher: bool) -> Optional[tuple[int, float]]:
    """(epoch, value) of the best validation metric in ``history``, None when empty."""
    rows = [(r["epoch"], r[f"val_{metric}"]) for r in history if f"val_{metric}" in r]
    if not rows:
        return None
    return max(rows, key=lambda r: r[1]) if higher else min(rows, key=lambda r: r[1])


def _stale(history: list[dict[str, Any]], best: Optional[tuple[int, float]], patience: Optional[int]) -> bool:
    """Early stopping: ``patience`` epochs have passed since the best one."""
    return patience is not None and best is not None and bool(history) and history[-1]["epoch"] - best[0] >= patience


def _is_terminal() -> bool:
    """Progress bars go to a terminal or a notebook; a pipe or a file gets the per-epoch lines only."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _progress(batches, total: int, desc: str, show: bool):
    """A progress bar over an iterator already made. Never over the DataLoader itself:
    tqdm.auto's tqdm calls iter() on what it wraps in its constructor and again to
    iterate, and every DataLoader iterator draws a seed from torch's global RNG, so
    the bars shifted dropout and changed the weights."""
    if not show:
        return batches
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return batches
    return tqdm(batches, total=total, desc=desc, leave=False, dynamic_ncols=True)


def _all_reduce_mean(metrics: dict[str, Any], n: int, world: int) -> dict[str, Any]:
    """Training metrics averaged over ranks (each rank saw an equal share)."""
    if world == 1:
        return metrics
    import torch.distributed as dist

    keys = [k for k, v in metrics.items() if isinstance(v, float)]
    t = torch.tensor([metrics[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {**metrics, **{k: v / world for k, v in zip(keys, t.tolist())}}


# ---------------------------------------------------------------------------- distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_distributed(family, dataset, out: Path, cfg: TrainConfig, model_options, resume, until) -> TrainResult:
    """Starts ``cfg.nproc`` processes on this node with torch's elastic launcher, which
    meets the other nodes' launchers at ``master_addr:master_port``; global rank 0 (on
    node 0) writes the run."""
    start = time.perf_counter()
    if cfg.nnodes > 1:
        addr, port = cfg.master_addr, cfg.master_port
    else:
        addr, port = "127.0.0.1", cfg.master_port or _free_port()
    fd, job = tempfile.mkstemp(prefix=".job.", suffix=".pt", dir=out)
    os.close(fd)
    try:
        torch.save({"family": family, "dataset": dataset, "out": str(out), "config": asdict(cfg),
                    "model_options": model_options, "resume": str(resume) if resume else None, "until": until}, job)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(cfg.nnodes), "--node-rank",
               str(cfg.node_rank), "--nproc-per-node", str(cfg.nproc), "--master-addr", addr, "--master-port", str(port),
               # the static rendezvous waits this long for the other nodes; no restarts: a lost node ends the run
               "--rdzv-conf", f"timeout={max(1, round(cfg.dist_timeout))}", "--max-restarts", "0",
               "-m", "torchport.train", job]
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // cfg.nproc)))
        proc = subprocess.run(cmd, env=env, check=False)
        if proc.returncode != 0:
            raise TorchportError(_failure(out, cfg, proc.returncode))
    finally:
        Path(job).unlink(missing_ok=True)
    if cfg.node_rank != 0:  # global rank 0, on node 0, wrote the checkpoint and the logs
        epochs = cfg.epochs or 0
        last = min(epochs, until) if until is not None else epochs
        return TrainResult(out, out / CHECKPOINT_FILE, family, dataset.name, last, time.perf_counter() - start, {}, [])
    ckpt = load_checkpoint(out / CHECKPOINT_FILE)
    return TrainResult(out, out / CHECKPOINT_FILE, family, dataset.name, ckpt["epoch"], time.perf_counter() - start,
                       ckpt["metrics"], list(ckpt["history"]))


def _failure(out: Path, cfg: TrainConfig, code: int) -> str:
    """What a failed distributed run tells the user: what probably happened and how to go on."""
    where = f"on node {cfg.node_rank} of {cfg.nnodes}" if cfg.nnodes > 1 else f"in {cfg.nproc} processes"
    text = (f"distributed training failed {where}: torch.distributed.run exited {code} (a process or a node stopped, "
            f"or a peer did not answer within {cfg.dist_timeout:g} s; the messages above say which)")
    ckpt = out / CHECKPOINT_FILE
    if ckpt.exists():
        try:
            epoch = load_checkpoint(ckpt)["epoch"]
        except TorchportError:
            epoch = "?"
        return text + f". The last checkpoint is '{ckpt}' (epoch {epoch}); continue with --resume {ckpt}"
    if cfg.node_rank != 0:
        return text + ". Node 0 holds the checkpoint, if an epoch finished; continue from it with --resume"
    return text + ". No epoch finished, so there is no checkpoint to resume from"


def _worker(job: str) -> None:
    spec = torch.load(job, weights_only=False)  # written by _launch_distributed just before
    cfg = TrainConfig(**spec["config"])
    try:
        _train_process(spec["family"], spec["dataset"], Path(spec["out"]), cfg, spec["model_options"],
                       spec["resume"], spec["until"])
    except (RuntimeError, torch.distributed.DistError) as e:
        # Gloo and the store report a lost peer in their own words (a RuntimeError from
        # backward, a DistError from the store); say it in ours, without a traceback.
        text = str(e)
        if not isinstance(e, torch.distributed.DistError) and not any(s in text for s in _LOST_PEER):
            raise
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        rank, world = os.environ.get("RANK", "?"), os.environ.get("WORLD_SIZE", "?")
        print(f"torchport: rank {rank} of {world} stopped: lost contact with another process or node ({first})",
              file=sys.stderr)
        sys.exit(1)


#: how gloo words a peer that went away or did not answer in time
_LOST_PEER = ("Connection closed by peer", "Connection reset by peer", "Timed out", "timed out", "Timeout")


def rebuild(checkpoint: Union[str, Path]) -> Pipeline:
    """The trained model (normalisation included) from a checkpoint alone."""
    return pipeline_from_checkpoint(load_checkpoint(checkpoint))


if __name__ == "__main__":
    _worker(sys.argv[1])


__all__ = ["TrainConfig", "TrainResult", "TrainingInterrupted", "evaluate", "loss_fn", "rebuild", "train", "write_plots"]
