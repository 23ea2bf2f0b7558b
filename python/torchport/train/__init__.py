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

The package, by its parts: ``config`` (``TrainConfig``, ``TrainResult``), ``metrics``
(losses, ``Meter``, ``evaluate``), ``logs`` (metrics files, TensorBoard, plots),
``loop`` (``train``, the epochs, resuming), ``distributed`` (the launcher) and
``__main__`` (one launched process). The checkpoint a run writes is
``torchport.checkpoint.Checkpoint``.
"""

# Every name the single train.py module offered, from the module that now holds it.
from torchport.checkpoint import CHECKPOINT_FILE, Checkpoint
from torchport.train.config import (
    BEST_FILE,
    DEFAULT_VAL_FRACTION,
    OPTIMIZERS,
    PRIMARY,
    RECIPE_FIELDS,
    SCHEDULES,
    TrainConfig,
    TrainResult,
)
from torchport.train.logs import Logger, write_plots
from torchport.train.loop import RUN_FILES, TrainingInterrupted, pick_device, rebuild, train
from torchport.train.metrics import Meter, evaluate, loss_fn, scaled_loss

__all__ = ["TrainConfig", "TrainResult", "TrainingInterrupted", "evaluate", "loss_fn", "rebuild", "train", "write_plots"]
