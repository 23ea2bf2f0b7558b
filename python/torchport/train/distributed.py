"""Training in several processes or machines: torch's elastic launcher
(``torch.distributed.run``) starts ``python -m torchport.train JOB`` per process
(``train/__main__.py``), and ``_failure`` says what a failed run leaves to resume."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from torchport.checkpoint import CHECKPOINT_FILE, read_checkpoint
from torchport.errors import TorchportError
from torchport.train.config import TrainConfig, TrainResult

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
    ckpt = read_checkpoint(out / CHECKPOINT_FILE)
    return TrainResult(out, out / CHECKPOINT_FILE, family, dataset.name, ckpt.epoch, time.perf_counter() - start,
                       ckpt.metrics, list(ckpt.history))


def _failure(out: Path, cfg: TrainConfig, code: int) -> str:
    """What a failed distributed run tells the user: what probably happened and how to go on."""
    where = f"on node {cfg.node_rank} of {cfg.nnodes}" if cfg.nnodes > 1 else f"in {cfg.nproc} processes"
    text = (f"distributed training failed {where}: torch.distributed.run exited {code} (a process or a node stopped, "
            f"or a peer did not answer within {cfg.dist_timeout:g} s; the messages above say which)")
    ckpt = out / CHECKPOINT_FILE
    if ckpt.exists():
        try:
            epoch = read_checkpoint(ckpt).epoch
        except TorchportError:
            epoch = "?"
        return text + f". The last checkpoint is '{ckpt}' (epoch {epoch}); continue with --resume {ckpt}"
    if cfg.node_rank != 0:
        return text + ". Node 0 holds the checkpoint, if an epoch finished; continue from it with --resume"
    return text + ". No epoch finished, so there is no checkpoint to resume from"


