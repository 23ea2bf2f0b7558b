"""The training loop: ``train`` resolves the data, the recipe and the run folder, then
trains in this process (``_train_process``) or launches the distributed processes
(``train.distributed``); ``_fit`` runs the epochs and writes a ``Checkpoint`` after each."""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from torchport.checkpoint import CHECKPOINT_FILE, Checkpoint, TrainedOn, pipeline_from_checkpoint, read_checkpoint
from torchport.data import DATASETS, TorchportDataset, load_dataset, split_indices
from torchport.errors import BadOptionError, CheckpointError, ModelRuntimeError
from torchport.models import Pipeline, build_model, config_dict, config_for
from torchport.train.config import BEST_FILE, DEFAULT_VAL_FRACTION, PRIMARY, TrainConfig, TrainResult
from torchport.train.distributed import _launch_distributed
from torchport.train.logs import Logger, write_plots
from torchport.train.metrics import Meter, evaluate, scaled_loss

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
        ckpt = read_checkpoint(resume)
        if ckpt.family != family or ckpt.dataset.name != dataset.name:
            raise CheckpointError(
                f"checkpoint '{resume}' is {ckpt.family} on {ckpt.dataset.name}, not {family} on {dataset.name}"
            )
        keep = {k: getattr(cfg, k) for k in ("device", "workers", "progress", "nproc", "tensorboard", "plots",
                                             "nnodes", "node_rank", "master_addr", "master_port", "dist_timeout")}
        if cfg.epochs is not None:  # an explicit epoch count extends (or finishes) the run
            if cfg.epochs < ckpt.epoch:
                raise BadOptionError(f"epochs: checkpoint '{resume}' has already trained {ckpt.epoch} epochs; "
                                     f"expected {ckpt.epoch} or more, got {cfg.epochs}")
            keep["epochs"] = cfg.epochs
        cfg = TrainConfig(**{**ckpt.train_config, **keep})

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


def _build(family: str, dataset: TorchportDataset, norm, target_norm, model_options,
           ckpt: Optional[Checkpoint]) -> tuple[dict[str, Any], Pipeline]:
    """The model config and the pipeline (normalisation, model, target scaling), from the checkpoint when resuming."""
    if ckpt is not None:
        model_cfg = ckpt.config
        model = build_model(family, model_cfg)
        model.load_state_dict(ckpt.state_dict)
    else:
        model_cfg = config_dict(config_for(family, dataset.input_shape, dataset.n_outputs, dataset.task, **(model_options or {})))
        model = build_model(family, model_cfg)
    target = target_norm.tensors() if target_norm is not None else (None, None)
    return model_cfg, Pipeline(model, *norm.tensors(), "none", *target)


def _restore(ckpt: Checkpoint, opt, sched, cfg: TrainConfig) -> None:
    """Optimizer and schedule state from a checkpoint. When ``--epochs`` extends the run,
    the schedule keeps its step count but takes the new length (its other state, such
    as OneCycle's phases or cosine's period, comes from the longer schedule)."""
    opt.load_state_dict(ckpt.optimizer)
    state = ckpt.scheduler
    if cfg.epochs != ckpt.train_config["epochs"]:
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


@dataclass
class _Run:
    """One run's moving parts, made by ``_prepare``; ``done`` counts the finished epochs."""

    pipeline: Pipeline
    trained: nn.Module  # the pipeline, DDP-wrapped when there are several ranks
    sampler: DistributedSampler
    loader: DataLoader
    val_loader: DataLoader
    opt: torch.optim.Optimizer
    sched: Any
    scaler: torch.amp.GradScaler
    amp: bool
    base: Checkpoint  # what every epoch's checkpoint shares: the model, its data, split and config
    history: list[dict[str, Any]]
    done: int
    n_train: int
    val_idx: list[int]


def _fit(family, dataset, out, cfg: TrainConfig, model_options, ckpt, until, device, rank, world) -> TrainResult:
    """One process's share of a run: the epochs (``_epochs``), then the plots; rank 0
    writes the logs and a ``Checkpoint`` per epoch."""
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    run = _prepare(family, dataset, cfg, model_options, ckpt, device, rank, world)
    last_epoch = min(cfg.epochs, until) if until is not None else cfg.epochs
    logger = Logger(out, cfg.tensorboard, fresh=ckpt is None) if rank == 0 else None
    try:
        best = _epochs(run, dataset, out, cfg, last_epoch, logger, device, rank, world, start)
    except KeyboardInterrupt:
        saved = out / CHECKPOINT_FILE
        raise TrainingInterrupted(saved if run.done > 0 and saved.is_file() else None, run.done, cfg.epochs) from None
    finally:
        if logger is not None:
            logger.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # rank 0 has written the last checkpoint
    history = run.history
    if rank == 0 and cfg.plots and history:
        split = "validation split" if run.base.split["held_out"] else "training data (nothing held out)"
        write_plots(history, dataset.task, list(dataset.labels), out, title=f"{out.name} ({family} on {dataset.name})",
                    split=split)
    metrics = {k[4:]: v for k, v in history[-1].items() if k.startswith("val_")} if history else {}
    epochs = history[-1]["epoch"] if history else last_epoch
    return TrainResult(out, out / CHECKPOINT_FILE, family, dataset.name, epochs, time.perf_counter() - start, metrics,
                       history, run.val_idx, out / BEST_FILE if best is not None else None)


def _prepare(family: str, dataset: TorchportDataset, cfg: TrainConfig, model_options, ckpt: Optional[Checkpoint],
             device: torch.device, rank: int, world: int) -> _Run:
    """The split, the pipeline, the loaders, the optimizer and the schedule (restored when resuming)."""
    train_idx, val_idx, val_fraction = _split(dataset, cfg)
    dataset.prepare(train_idx)  # CSV vocabularies: from the training rows only
    norm = dataset.normalization(train_idx)  # the training split only
    target_norm = dataset.target_normalization(train_idx)
    if ckpt is not None and ckpt.target_normalization is None:
        target_norm = None  # a run started before targets were standardised goes on without
    model_cfg, pipeline = _build(family, dataset, norm, target_norm, model_options, ckpt)
    pipeline = pipeline.to(device)
    trained: nn.Module = pipeline
    if world > 1:
        trained = nn.parallel.DistributedDataParallel(pipeline, device_ids=[device.index] if device.type == "cuda" else None)
    sampler, loader, val_loader = _loaders(dataset, train_idx, val_idx, cfg, device, rank, world)
    opt = _optimizer(cfg, pipeline.parameters())
    sched = _schedule(cfg, opt, cfg.epochs * len(loader))
    amp = cfg.amp and device.type == "cuda"
    history, done = [], 0
    if ckpt is not None:
        _restore(ckpt, opt, sched, cfg)
        history, done = list(ckpt.history), ckpt.epoch
    split = {"val_fraction": val_fraction, "seed": cfg.seed, "n_train": len(train_idx), "n_val": len(val_idx),
             "held_out": val_fraction > 0}
    base = Checkpoint(family, model_cfg, _trained_on(dataset), norm.to_dict(), {}, {}, 0, split=split,
                      target_normalization=target_norm.to_dict() if target_norm is not None else None,
                      train_config=asdict(cfg))
    return _Run(pipeline, trained, sampler, loader, val_loader, opt, sched, torch.amp.GradScaler("cuda", enabled=amp),
                amp, base, history, done, len(train_idx), list(val_idx))


def _trained_on(dataset: TorchportDataset) -> TrainedOn:
    return TrainedOn(dataset.name, dataset.description, dataset.task, list(dataset.input_shape), dataset.input_name,
                     list(dataset.labels), list(dataset.features), list(dataset.image_size) if dataset.image_size else None)


def _loaders(dataset: TorchportDataset, train_idx: list[int], val_idx: list[int], cfg: TrainConfig,
             device: torch.device, rank: int, world: int) -> tuple[DistributedSampler, DataLoader, DataLoader]:
    """This rank's shuffled share of the training split (one seeded sampler across the ranks), and the validation split."""
    train_set = Subset(dataset, train_idx)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(train_set, batch_size=cfg.batch_size // world, sampler=sampler, num_workers=cfg.workers,
                        pin_memory=device.type == "cuda")
    val_loader = DataLoader(Subset(dataset, val_idx), batch_size=max(cfg.batch_size, 256), num_workers=cfg.workers)
    return sampler, loader, val_loader


def _epochs(run: _Run, dataset: TorchportDataset, out: Path, cfg: TrainConfig, last_epoch: int, logger: Optional[Logger],
            device: torch.device, rank: int, world: int, start: float) -> Optional[tuple[int, float]]:
    """Trains up to ``last_epoch`` or an early stop; rank 0 (the one with a ``logger``)
    evaluates, logs and saves every epoch. Returns the best (epoch, validation metric)."""
    metric, higher = PRIMARY[dataset.task]
    best = _best_so_far(run.history, metric, higher)
    for epoch in range(run.done, last_epoch):
        if _stale(run.history, best, cfg.patience):
            break  # early stopping: resumed after the run had already stopped
        # Re-seeded per epoch: shuffling and dropout do not depend on what ran before,
        # so resuming from a checkpoint reproduces an uninterrupted run.
        run.sampler.set_epoch(epoch)
        torch.manual_seed(cfg.seed * 1_000_003 + epoch * 7919 + rank)
        train_metrics = _train_epoch(run.trained, run.loader, run.opt, run.sched, run.scaler, run.amp, dataset.task,
                                     dataset.n_outputs, device, epoch, cfg.progress and logger is not None
                                     and _is_terminal(), f"epoch {epoch + 1}/{cfg.epochs}")
        train_metrics = _all_reduce_mean(train_metrics, run.n_train, world)
        if logger is None:
            run.done = epoch + 1
            continue
        row, val = _record(run, dataset, epoch, train_metrics, logger, device, start)
        improved = best is None or (val[metric] > best[1] if higher else val[metric] < best[1])
        if improved:
            best = (epoch + 1, val[metric])
        _save(run, val, epoch, out, improved)
        run.done = epoch + 1
        if cfg.progress:  # one plain line per saved epoch, on a terminal and in a pipe alike
            print(f"epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.4f}  val loss {val['loss']:.4f}  "
                  f"val {metric} {val[metric]:.4f}{'  (best)' if improved else ''}", file=sys.stderr, flush=True)
        if _stale(run.history, best, cfg.patience):
            if cfg.progress:
                print(f"early stop: val {metric} has not improved for {cfg.patience} epochs since epoch {best[0]} "
                      f"(best checkpoint: {out / BEST_FILE})", file=sys.stderr, flush=True)
            break
    return best


def _record(run: _Run, dataset: TorchportDataset, epoch: int, train_metrics: dict[str, Any], logger: Logger,
            device: torch.device, start: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluates the epoch on the validation split and logs its row; returns the row and the validation metrics."""
    val = evaluate(run.pipeline, run.val_loader, dataset.task, dataset.n_outputs, device)
    row = {"epoch": epoch + 1, "lr": run.sched.get_last_lr()[0], "seconds": round(time.perf_counter() - start, 3)}
    row.update({f"train_{k}": v for k, v in train_metrics.items() if k != "confusion"})
    row.update({f"val_{k}": v for k, v in val.items()})
    run.history.append(row)
    logger.log(row)
    return row, val


def _save(run: _Run, val: dict[str, Any], epoch: int, out: Path, best: bool) -> None:
    """The epoch's checkpoint, resumable, to checkpoint.pt, and to best.pt when it is the best so far."""
    ckpt = replace(run.base, state_dict={k: v.detach().cpu() for k, v in run.pipeline.model.state_dict().items()},
                   metrics=val, history=run.history, epoch=epoch + 1, optimizer=run.opt.state_dict(),
                   scheduler=run.sched.state_dict())
    if best:
        ckpt.save(out / BEST_FILE)
    ckpt.save(out / CHECKPOINT_FILE)


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


def rebuild(checkpoint: Union[str, Path]) -> Pipeline:
    """The trained model (normalisation included) from a checkpoint alone."""
    return pipeline_from_checkpoint(read_checkpoint(checkpoint))
