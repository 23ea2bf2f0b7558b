"""One process of a distributed run: ``python -m torchport.train JOB``, started by
torch's elastic launcher from ``train.distributed._launch_distributed``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from torchport.train.config import TrainConfig
from torchport.train.loop import _train_process

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


if __name__ == "__main__":
    _worker(sys.argv[1])
