"""How to train (``TrainConfig``), what a run gave (``TrainResult``), and the
choices a config picks from."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from torchport.errors import BadOptionError

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


