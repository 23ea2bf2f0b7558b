"""The ``torchport`` command: a thin layer over the Python API.

    torchport inspect model.pt
    torchport verify model.pt [--inputs FILE] [--atol A] [--rtol R] [--load-library PATH] [--json]
    torchport verify model.pt --model-from CHECKPOINT --localize [--runtime native|binary|torchscript]
    torchport run model.pt --input in.pt --output out.pt
    torchport demo
    torchport train FAMILY [--data NAME | --csv FILE --target COL | --images DIR] --out runs/NAME
        [--resume RUN_DIR [--epochs N] | --force] [--nproc N] [--nnodes N --node-rank R --master-addr HOST --master-port P]
    torchport export RUN_DIR|CHECKPOINT --out model.pt [--postprocess softmax|argmax] [--format torchscript|aoti|onnx|executorch|all]
        [--delegate xnnpack|none] [--optimize none|freeze|fast]
    torchport bench model.pt [--batch 1,8,32] [--threads 1,2] [--runtimes ...] [--checkpoint CKPT]
    torchport tune model.pt [--batch N] [--threads 1,2] [--tolerance ATOL] [--profile OUT]
        [--json FILE] [--plot FILE]
    torchport triton model.pt --repo models [--name NAME] [--version N] [--max-batch-size B] [--instances K]
    torchport triton --check models/NAME
    torchport models
    torchport datasets
    torchport --cmake-prefix-path

Exit codes come from the runtime's one table, shared with torchport-run (docs/runtime.md):
0 ok, 1 parity mismatch, 2 usage or bad option, 3 artifact missing or unreadable, 4 bad input,
5 the model failed while running, 6 export failed, 7 bad data, 8 bad checkpoint, 9 an output
could not be written, 10 the C++ runtime or a backend (ExecuTorch for .pte) is not installed.
A closed stdout (``torchport inspect m.pt | head -1``) ends the command quietly with 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from torchport._version import __version__
from torchport.errors import BadOptionError, TorchportError, exit_code_of
from torchport.manifest import Manifest, read_manifest

EXIT_MISMATCH = 1


def artifact_problem(path: str) -> str:
    """Why the runtime would refuse the artifact at ``path`` though its manifest
    reads (checksum missing or mismatched, a .pte's program refused); "" when none."""
    from torchport.native import load_native

    from torchport.formats import is_onnx

    if is_onnx(Path(path)):
        return ""
    return load_native().inspect(str(path)).problem


def inspect_artifact(path: str, *, as_json: bool = False) -> str:
    """The manifest as readable text (or JSON), read and checked by the runtime."""
    from torchport.native import load_native

    from torchport.formats import is_onnx

    if is_onnx(Path(path)):  # no zip: the manifest from its metadata, with the runtime's rules
        info, m = None, read_manifest(path)
    else:
        info = load_native().inspect(str(path))
        m = Manifest.from_native(info.manifest)
    if as_json:
        return m.to_json()
    lines = [
        f"{path}: {m.name}",
        f"  exported by torchport {m.torchport_version or '?'} with torch {m.torch_version or '?'} "
        f"({m.export_method or 'no manifest: contract derived from forward()'}) {m.created}",
        "  inputs:",
        *[f"    {s.name:<16} {s.dtype or '?':<9} {s.shape_str()}" for s in m.inputs],
        "  outputs:",
        *[f"    {s.name:<16} {s.dtype or '?':<9} {s.shape_str()}" for s in m.outputs],
        f"  golden examples: {'yes' if m.golden else 'no'}",
    ]
    if m.labels:
        lines.append(f"  labels: {json.dumps(m.labels)}")
    for s in m.inputs:
        if s.image is not None:
            i = s.image
            lines.append(f"  {s.name}: {i.channels} pictures, uint8 {i.layout} 0..255, any size; in the graph: "
                         f"{i.resize} resize to {i.size[0]}x{i.size[1]}, / 255, mean {[round(v, 4) for v in i.mean]}, "
                         f"std {[round(v, 4) for v in i.std]}")
    if m.features:
        lines.append("  features (input columns, in order):")
        lines += [f"    {f.name:<16} {f.type}" + (f" one-hot over {json.dumps(list(f.vocabulary))}" if f.vocabulary else "")
                  for f in m.features]
    if m.format:
        tol = f"atol={m.tolerance['atol']:g}, rtol={m.tolerance['rtol']:g} against eager" if m.tolerance else "bit-exact"
        lines.insert(1, f"  format: {m.format} ({tol})")
    if m.optimize:
        lines.insert(2, f"  optimize: {m.optimize}")
    if m.checksum and info is not None:
        ok = info.checksum_ok
        lines.append(f"  payload checksum: {m.checksum[:19]}... {'verified' if ok else 'MISMATCH: modified after export'}")
    if info is not None and info.problem:
        lines.append(f"  REFUSED at load: {info.problem}")
    if m.metadata:
        lines.append("  metadata:")
        lines += [f"    {k}: {json.dumps(v)}" for k, v in m.metadata.items()]
    return "\n".join(lines)


def run_artifact(path: str, input_file: str, output_file: str, *, device: str = "cpu", threads: Optional[int] = None,
                 format: str = "tensors", top_k: int = 3) -> None:
    """Runs an artifact in the C++ runtime on a tensor file; writes the outputs as tensors, or
    as JSON or CSV answers (the runtime's format_answers, as ``torchport-run predict --format``)."""
    from torchport.native import NativeModel, load_native, read_tensor_file

    model = NativeModel(path, device=device, threads=threads)
    # Refused before running: the output may not replace what this command reads.
    load_native().check_output_path(str(output_file), [str(path), str(input_file)])
    data = read_tensor_file(input_file, path)  # the runtime's own reader, as torchport-run predict uses
    if isinstance(data, (list, tuple)):
        outputs = model.run(*data)
    else:
        outputs = model.run(data)
    if format == "tensors":
        # Nested as the model returns them, as torchport-run predict writes them.
        load_native().write_outputs_file(str(output_file), model._model, list(outputs),
                                         protect=[str(path), str(input_file)])
        return
    native = load_native()
    text = native.format_answers(list(outputs), model._model.manifest, format=format, top_k=top_k)
    native.write_file(str(output_file), text.encode(), overwrite=True, protect=[str(path), str(input_file)])


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise BadOptionError(f"--{what}: expected integers separated by commas, got {text!r}") from None


def bench_artifact(artifact: str, *, batch: str = "1,8,32", threads: str = "1", runtimes: Optional[str] = None,
                   checkpoint: Optional[str] = None, iters: int = 100, rounds: int = 3,
                   json_out: Optional[str] = None, plot: Optional[str] = None):
    """``torchport bench``: ``torchport.bench.bench`` with the command line's lists; prints the table."""
    from torchport.bench import bench

    report = bench(artifact, batches=_int_list(batch, "batch"), threads=_int_list(threads, "threads"),
                   runtimes=runtimes.split(",") if runtimes else None, checkpoint=checkpoint, iters=iters,
                   rounds=rounds)
    print(report)
    if json_out:
        report.write_json(json_out)
    if plot:
        report.plot(plot)
    return report


def tune_artifact(artifact: str, *, batch: int = 1, threads: str = "1", tolerance: Optional[float] = None,
                  profile: Optional[str] = None, iters: int = 50, rounds: int = 3):
    """``torchport tune``: ``torchport.tune.tune`` with the command line's lists; prints the table."""
    from torchport.tune import tune

    report = tune(artifact, batch=batch, threads=_int_list(threads, "threads"), atol=tolerance,
                  rtol=None if tolerance is None else 0.0, profile=profile, iters=iters, rounds=rounds)
    print(report)
    return report


def _option_value(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise BadOptionError(f"--set: expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def train_model(
    family: str,
    *,
    out: str,
    data: Optional[str] = None,
    csv: Optional[str] = None,
    target: Optional[str] = None,
    images: Optional[str] = None,
    categorical: Optional[Sequence[str]] = None,
    resume: Optional[str] = None,
    model_options: Optional[dict[str, Any]] = None,
    force: bool = False,
    **config: Any,
):
    """``torchport train``: the family's default dataset unless one is given; ``config``
    holds TrainConfig fields (epochs, batch_size, lr, device, seed, nproc...)."""
    from torchport.data import resolve_dataset
    from torchport.models import get_family
    from torchport.train import TrainConfig, train

    fam = get_family(family)
    dataset = resolve_dataset(data, csv=csv, target=target, images=images, default=fam.default_dataset,
                              categorical=categorical)
    result = train(family, dataset, out=out, config=TrainConfig(**config), model_options=model_options, resume=resume,
                   force=force)
    # Under torchrun (RANK set) or on a node other than 0, rank 0 elsewhere wrote the run.
    rank = int(os.environ.get("RANK", "0") or 0)
    if config.get("node_rank", 0) > 0 or rank > 0:
        who = f"rank {rank} of {os.environ.get('WORLD_SIZE')}" if rank > 0 else \
            f"node {config['node_rank']} of {config.get('nnodes')}"
        print(f"{who}: trained {family} on {dataset.name} for {result.epochs} epochs in {result.seconds:.1f} s; "
              "rank 0 (on node 0) wrote the checkpoint and the logs")
        return result
    shown = {k: round(v, 4) for k, v in result.metrics.items() if isinstance(v, float)}
    print(f"trained {family} on {dataset.name} for {result.epochs} epochs in {result.seconds:.1f} s; validation {shown}")
    print(f"checkpoint: {result.checkpoint}")
    return result


def export_model(checkpoint: str, out: str, *, postprocess: str = "none", force: bool = False, check: bool = True,
                 format: str = "torchscript", delegate: Optional[str] = None, optimize: str = "none"):
    """``torchport export``: checkpoint -> artifact with normalisation (and postprocess) inside;
    with ``check``, the parity report through every runtime on its golden examples (one
    report per format; the first that fails is returned, else the last)."""
    from torchport.checkpoint import export_checkpoint

    written = export_checkpoint(checkpoint, out, postprocess=postprocess, force=force, format=format,
                                delegate=delegate, optimize=optimize)
    paths = list(written.values()) if isinstance(written, dict) else [written]
    for path in paths:
        compile_info = read_manifest(path).metadata.get("torchport.compile")
        compiler = "ExecuTorch lowering" if compile_info and "executorch" in compile_info else "AOTInductor compile"
        took = f" ({compiler} {compile_info['seconds']} s)" if compile_info else ""
        print(f"exported {path}{took}")
    if not check:
        return None
    from torchport.parity import verify

    report = None
    for path in paths:
        report = verify(path)
        print(report)
        if not report.ok:
            break
    return report


def triton_export(artifact: str, repo: str, *, check: bool = True, atol: float = 0.0, rtol: float = 0.0,
                  **options: Any):
    """``torchport triton``: the artifact into a Triton model repository (``torchport.triton.export_triton``);
    with ``check``, the server-less check of the model folder when tritonclient is installed."""
    from torchport.triton import TritonSchemaUnavailable, check_triton, export_triton

    result = export_triton(artifact, repo, **options)
    print(f"wrote {result.model} (version {result.version}), "
          f"{result.config}{'' if result.config_written else ' (unchanged)'}"
          f"{', ' + str(result.labels) if result.labels else ''}; max_batch_size {result.max_batch_size}")
    if not check:
        return None
    try:
        report = check_triton(result.model_dir, atol=atol, rtol=rtol)
    except TritonSchemaUnavailable as e:
        print(f"not checked: {e}", file=sys.stderr)
        return None
    print(report)
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="torchport",
        description="Ship PyTorch models to native code: train, export, inspect, verify and run torchport artifacts "
        "(TorchScript .pt, AOTInductor .pt2, ONNX .onnx, ExecuTorch .pte).",
        epilog="exit codes: 0 ok, 1 parity mismatch, 2 usage or bad option, 3 artifact missing or unreadable, "
        "4 bad input, 5 the model failed while running, 6 export failed, 7 bad data, 8 bad checkpoint, "
        "9 an output could not be written, 10 a runtime or backend is not installed (the table, shared with "
        "torchport-run, is in docs/runtime.md)",
    )
    p.add_argument("--version", action="version", version=f"torchport {__version__}")
    p.add_argument(
        "--cmake-prefix-path",
        action="store_true",
        help="print the prefix to add to CMAKE_PREFIX_PATH for find_package(torchport), and exit",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("inspect", help="show an artifact's manifest", description="Show an artifact's manifest.")
    s.add_argument("artifact")
    s.add_argument("--json", action="store_true", help="print the manifest as JSON")

    s = sub.add_parser(
        "verify",
        help="compare outputs across runtimes",
        description="Run the same inputs through every runtime that reads the artifact's format (TorchScript: "
        "Python TorchScript, the C++ runtime's binding and the torchport-run binary; .pt2: AOTInductor's Python "
        "loader, the binding and the binary; ONNX: ONNX Runtime; .pte: ExecuTorch's Python runtime, the binding "
        "and the binary) and compare with the golden outputs (or, with "
        "--inputs, with the format's Python runtime), within the manifest's tolerance. Exit 1 on mismatch.",
    )
    s.add_argument("artifact")
    s.add_argument("--inputs", metavar="FILE", help="torch.save file of inputs (tensor, list, or dict by name), .npy array, .npz arrays (by name or position), CSV rows "
                   "for a model with features, or a PNG/JPEG picture")
    s.add_argument("--atol", type=float, default=None,
                   help="absolute tolerance (default: the manifest's for its format; 0, exact, for TorchScript)")
    s.add_argument("--rtol", type=float, default=None,
                   help="relative tolerance (default: the manifest's for its format; 0, exact, for TorchScript)")
    s.add_argument("--threads", type=int, default=None, help="intra-op threads for every runtime")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument("--model-from", metavar="CHECKPOINT",
                   help="the training checkpoint the artifact was exported from: adds eager to the comparison")
    s.add_argument("--localize", action="store_true",
                   help="name the first submodule whose output differs from eager, and why (needs --model-from; "
                   "--threads then sets the runtime's threads, eager keeps torch's)")
    s.add_argument("--runtime", default="native", choices=["native", "binary", "torchscript"],
                   help="the runtime --localize checks (default native)")
    s.add_argument("--load-library", action="append", default=[], metavar="PATH",
                   help="a custom operator library the artifact needs (repeatable), loaded before every runtime")

    s = sub.add_parser(
        "run",
        help="run an artifact in the C++ runtime",
        description="Run an artifact in the C++ runtime on a torch.save file of inputs; write the outputs "
        "nested as the exported model returns them (a tensor, a tuple, or its dicts and lists), readable by "
        "plain torch.load.",
    )
    s.add_argument("artifact")
    s.add_argument("--input", required=True, metavar="FILE",
                   help="torch.save file of inputs, .npy array, .npz arrays (by input name or position), CSV rows (a model with features) or a PNG/JPEG "
                   "picture (uint8 [1, H, W, 3] RGB), read by the runtime as torchport-run predict does")
    s.add_argument("--output", required=True, metavar="FILE")
    s.add_argument("--format", default="tensors", choices=["tensors", "json", "csv"],
                   help="tensors (torch.save), or json/csv answers: named outputs, the label and top-k labels "
                   "and scores when the manifest has labels (as torchport-run predict --format)")
    s.add_argument("--top-k", type=int, default=3, help="labels per sample with --format json|csv (default 3)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=None)

    s = sub.add_parser(
        "demo",
        help="train, export and verify a digits CNN",
        description="Train a small CNN on scikit-learn's 8x8 digits, export it, run it in the torchport-run "
        "binary on held-out images and print accuracies and the parity report. Exit 1 on disagreement.",
    )
    s.add_argument("--out", default="runs/demo", help="folder for the artifact and files (default runs/demo)")
    s.add_argument("--epochs", type=int, default=12)
    s.add_argument("--seed", type=int, default=0)

    s = sub.add_parser(
        "train",
        help="train a model family on a dataset",
        description="Train a model family (see `torchport models`) on a registered dataset (see `torchport datasets`), "
        "a CSV file or an image folder. Writes checkpoint.pt, metrics.csv/.jsonl, TensorBoard events and PNG plots "
        "to --out.",
    )
    s.add_argument("family")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="NAME", help="a registered dataset (default: the family's)")
    src.add_argument("--csv", metavar="FILE", help="a CSV file with a header; numeric columns, and categorical ones "
                     "(any cell not a number, or --categorical); the target may hold numbers or label strings")
    src.add_argument("--images", metavar="DIR", help="a folder with one sub-folder of images per class")
    s.add_argument("--target", metavar="COL", help="the CSV column to predict")
    s.add_argument("--categorical", action="append", default=[], metavar="COL",
                   help="a CSV column to one-hot encode even though it holds numbers (repeatable)")
    s.add_argument("--out", required=True, metavar="DIR", help="run folder, for example runs/NAME")
    s.add_argument("--epochs", type=int, default=None,
                   help="epochs in all (default: the recipe's, docs/training.md; with --resume, the run's "
                   "own count, and a larger one extends a finished run)")
    s.add_argument("--batch-size", type=int, default=None, help="global batch size (default: the recipe's)")
    s.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    s.add_argument("--optimizer", default=None, choices=["adamw", "adam", "sgd"], help="default: the recipe's")
    s.add_argument("--schedule", default=None, choices=["onecycle", "cosine", "step", "constant"],
                   help="default: the recipe's")
    s.add_argument("--patience", type=int, default=None, metavar="EPOCHS",
                   help="early stopping: stop when the validation metric has not improved for this many epochs "
                   "(default: never); best.pt holds the best epoch either way")
    s.add_argument("--val-fraction", type=float, default=None, help="held-out fraction (default: the dataset's, 0.2)")
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda when available)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--nproc", type=int, default=1, help="processes for DistributedDataParallel (gloo on CPU, nccl on CUDA)")
    s.add_argument("--nnodes", type=int, default=1,
                   help="machines to train across; run the same command on each with its own --node-rank")
    s.add_argument("--node-rank", type=int, default=0, help="this machine's rank, 0..nnodes-1 (0 writes the run)")
    s.add_argument("--master-addr", default="127.0.0.1", metavar="HOST",
                   help="node 0's address, reachable from every node (default 127.0.0.1)")
    s.add_argument("--master-port", type=int, default=None, metavar="PORT",
                   help="a free port on node 0, the same on every node (required with --nnodes > 1)")
    s.add_argument("--dist-timeout", type=float, default=1800.0, metavar="SECONDS",
                   help="how long a node waits for a missing peer, at the rendezvous or in a collective, before "
                   "the run fails (default 1800)")
    s.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    s.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its folder (or its checkpoint file)")
    s.add_argument("--force", action="store_true",
                   help="start over in an --out that holds a run (its checkpoint, logs and plots are removed first)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a model config field, JSON value (for example --set cell=gru --set hidden=[128])")
    s.add_argument("--no-progress", action="store_true",
                   help="no progress bar or per-epoch lines (bars are drawn on a terminal only; a pipe gets one "
                   "line per epoch)")

    s = sub.add_parser(
        "bench",
        help="time the runtimes that run an artifact, side by side",
        description="Time every runtime that can run the artifact in one process, in alternating rounds, with "
        "the same inputs (the golden inputs repeated or sliced to each batch size) and thread settings: eager "
        "(with --checkpoint), TorchScript in Python, the C++ runtime through the binding (native) and in a C++ "
        "loop (native-cpp), the .pt2 and .onnx beside the artifact (same stem; ONNX Runtime when installed). "
        "Reports load time, first call, p50/p90/p99, throughput and the ratio to the first contender.",
    )
    s.add_argument("artifact")
    s.add_argument("--batch", default="1,8,32", metavar="B,B,...", help="batch sizes (default 1,8,32)")
    s.add_argument("--threads", default="1", metavar="T,T,...", help="intra-op thread counts (default 1)")
    s.add_argument("--runtimes", default=None, metavar="R,R,...",
                   help="a subset of eager, torchscript, native, native-cpp, aoti, executorch, onnxruntime (default: all that apply)")
    s.add_argument("--checkpoint", default=None, help="the training checkpoint the artifact came from: adds eager")
    s.add_argument("--iters", type=int, default=100, help="calls per contender per round (default 100)")
    s.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    s.add_argument("--json", metavar="FILE", help="write the report as JSON")
    s.add_argument("--plot", metavar="FILE", help="write a PNG chart of p50 per runtime")

    s = sub.add_parser(
        "tune",
        help="find the fastest settings that keep parity, and write them into a profile",
        description="Time the ways the C++ runtime can run the artifact (the artifact and its .pt/.pt2/.pte "
        "siblings of the same stem; for TorchScript the level applied at load and optimize_graph on/off; each "
        "thread count) in one process, in alternating rounds, keep those whose outputs on the golden inputs pass "
        "parity at the tolerance (default: the manifest's own, bit-exact unless it says), and write the fastest "
        "into a profile that torchport-run --profile, NativeModel(profile=...) and Options::profile apply.",
    )
    s.add_argument("artifact")
    s.add_argument("--batch", type=int, default=1, help="batch size to time at (default 1)")
    s.add_argument("--threads", default="1", metavar="T,T,...", help="intra-op thread counts to try (default 1)")
    s.add_argument("--tolerance", type=float, default=None, metavar="ATOL",
                   help="absolute tolerance against the golden outputs (rtol 0; default: the manifest's)")
    s.add_argument("--profile", default=None, metavar="OUT",
                   help="the profile to write (default: STEM.profile.json beside the artifact; replaced)")
    s.add_argument("--iters", type=int, default=50, help="calls per candidate per round (default 50)")
    s.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")

    s = sub.add_parser(
        "export",
        help="export a training checkpoint to an artifact",
        description="Export a checkpoint as a torchport artifact with the normalisation inside the graph (a C++ "
        "caller feeds raw data), labels, normalisation and validation metrics in the manifest; then verify it "
        "through every runtime. Exit 1 on mismatch.",
    )
    s.add_argument("checkpoint", metavar="RUN_DIR", help="a training run's folder, or its checkpoint file")
    s.add_argument("--out", required=True, metavar="FILE")
    s.add_argument("--postprocess", default="none", choices=["none", "softmax", "argmax"])
    s.add_argument("--format", default="torchscript", choices=["torchscript", "aoti", "onnx", "executorch", "all"],
                   help="torchscript (default); aoti: a torch.export + AOTInductor .pt2 package; onnx; executorch: "
                   "an ExecuTorch .pte for mobile and edge devices; all: torchscript, aoti and onnx, each beside "
                   "--out with suffixes .pt, .pt2, .onnx")
    s.add_argument("--delegate", choices=["xnnpack", "none"], default=None,
                   help="with --format executorch: lower to XNNPACK (default) or to ExecuTorch's portable "
                   "kernels only (none)")
    s.add_argument("--optimize", default="none", choices=["none", "freeze", "fast"],
                   help="TorchScript optimisation level: none (default, bit-exact); freeze (torch.jit.freeze: "
                   "conv-BN folding...); fast (freeze + optimize_for_inference: oneDNN layouts and fusion). A "
                   "level other than none records 10x its measured difference from eager as the tolerance")
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.add_argument("--no-verify", action="store_true", help="skip the parity check")

    s = sub.add_parser(
        "triton",
        help="write an artifact into a Triton model repository, or check one",
        description="Write ARTIFACT into the Triton Inference Server model repository --repo as "
        "DIR/NAME/config.pbtxt (from the manifest: names for the PyTorch backend, data types, dims with -1 "
        "for dynamic ones, a shared batch as max_batch_size), DIR/NAME/labels.txt for a classifier and "
        "DIR/NAME/N/model.pt, leaving other versions alone; then check the model folder. Options left out keep "
        "what an existing config.pbtxt says; a version whose contract differs from it is refused. --check "
        "DIR/NAME checks a model folder without a server: config.pbtxt against Triton's schema (needs "
        "tritonclient: pip install 'torchport[triton]'), the layout, and every version's golden request "
        "through the C++ runtime, bit for bit unless --atol/--rtol. Exit 1 on mismatch.",
    )
    s.add_argument("artifact", nargs="?", help="the torchport artifact to serve")
    s.add_argument("--repo", metavar="DIR", help="the model repository (created if missing)")
    s.add_argument("--name", help="the model's name and folder (default: the artifact's file name without suffix)")
    s.add_argument("--version", dest="model_version", type=int, metavar="N",
                   help="version folder (default: one after the highest there, 1 for a new model)")
    s.add_argument("--max-batch-size", type=int, metavar="B",
                   help="Triton's max_batch_size (default 8 when every input and output starts with the batch, "
                   "else 0; 0 serves the model without Triton's batching)")
    s.add_argument("--dynamic-batching", action=argparse.BooleanOptionalAction, default=None,
                   help="Triton's dynamic batcher (default: on when max_batch_size > 0)")
    s.add_argument("--max-queue-delay-us", type=int, metavar="US",
                   help="how long the dynamic batcher waits to fill a batch (default 100)")
    s.add_argument("--preferred-batch-size", type=int, action="append", metavar="B",
                   help="a batch size the dynamic batcher aims for (repeatable)")
    s.add_argument("--instances", type=int, metavar="K", help="model instances (instance_group count, default 1)")
    s.add_argument("--instance-kind", choices=["auto", "cpu", "gpu"],
                   help="where instances run (default auto: a GPU when there is one)")
    s.add_argument("--force", action="store_true", help="replace the version if it exists")
    s.add_argument("--no-check", action="store_true", help="skip the check after writing")
    s.add_argument("--check", metavar="DIR/NAME", help="only check this model folder")
    s.add_argument("--atol", type=float, default=0.0, help="the check's absolute tolerance (default 0: bit-exact)")
    s.add_argument("--rtol", type=float, default=0.0, help="the check's relative tolerance (default 0)")
    s.add_argument("--threads", type=int, default=None, help="intra-op threads for the check")

    sub.add_parser("models", help="list the model families", description="List the model families.")
    sub.add_parser("datasets", help="list the datasets", description="List the registered datasets and data sources.")
    return p


def resume_command(argv: Optional[Sequence[str]], run_dir: Path) -> str:
    """The interrupted ``torchport train`` command line with ``--resume RUN_DIR`` (and without ``--force``)."""
    args, rest = ["torchport"], list(sys.argv[1:] if argv is None else argv)
    while rest:
        a = rest.pop(0)
        if a == "--force":
            continue
        if a == "--resume":
            rest = rest[1:]
            continue
        if a.startswith("--resume="):
            continue
        args.append(a)
    return shlex.join([*args, "--resume", str(run_dir)])


def _inspect_command(args) -> int:
    print(inspect_artifact(args.artifact, as_json=args.json))
    # What loading would refuse is shown above and ends the command non-zero,
    # so that `torchport inspect model && deploy model` never deploys it.
    problem = artifact_problem(args.artifact)
    if problem:
        print(f"torchport: error[bad_artifact]: {problem}", file=sys.stderr)
        return exit_code_of("bad_artifact")
    return 0


def _verify_command(args) -> int:
    from torchport.checkpoint import model_from_checkpoint
    from torchport.native import read_tensor_file
    from torchport.parity import verify

    # The runtime's own reader, as torchport-run and `torchport run` use.
    inputs = read_tensor_file(args.inputs, args.artifact) if args.inputs else None
    model = model_from_checkpoint(args.model_from, args.artifact) if args.model_from else None
    if args.localize:
        if model is None:
            raise BadOptionError("--localize compares with the eager model: pass --model-from CHECKPOINT")
        from torchport.localizer import localize

        # The localiser looks for the first difference: exact unless a tolerance is given.
        found = localize(args.artifact, model=model, inputs=inputs, runtime=args.runtime,
                         atol=args.atol or 0.0, rtol=args.rtol or 0.0, threads=args.threads,
                         libraries=args.load_library)
        print(found.to_json() if args.json else found)
        return 0 if found.ok else EXIT_MISMATCH
    report = verify(args.artifact, model=model, inputs=inputs, atol=args.atol, rtol=args.rtol,
                    threads=args.threads, libraries=args.load_library)
    print(report.to_json() if args.json else report)
    return 0 if report.ok else EXIT_MISMATCH


def _run_command(args) -> int:
    run_artifact(args.artifact, args.input, args.output, device=args.device, threads=args.threads,
                 format=args.format, top_k=args.top_k)
    return 0


def _demo_command(args) -> int:
    from torchport.demo import run_demo

    return 0 if run_demo(out=Path(args.out), epochs=args.epochs, seed=args.seed) else EXIT_MISMATCH


def _train_command(args) -> int:
    train_model(
        args.family, out=args.out, data=args.data, csv=args.csv, target=args.target, images=args.images,
        categorical=args.categorical or None,
        resume=args.resume, model_options=dict(_option_value(t) for t in args.set) or None, force=args.force,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, patience=args.patience,
        schedule=args.schedule, val_fraction=args.val_fraction, device=args.device, seed=args.seed,
        nproc=args.nproc, workers=args.workers, amp=args.amp, progress=not args.no_progress,
        nnodes=args.nnodes, node_rank=args.node_rank, master_addr=args.master_addr,
        master_port=args.master_port, dist_timeout=args.dist_timeout,
    )
    return 0


def _bench_command(args) -> int:
    bench_artifact(args.artifact, batch=args.batch, threads=args.threads, runtimes=args.runtimes,
                   checkpoint=args.checkpoint, iters=args.iters, rounds=args.rounds, json_out=args.json,
                   plot=args.plot)
    return 0


def _tune_command(args) -> int:
    report = tune_artifact(args.artifact, batch=args.batch, threads=args.threads, tolerance=args.tolerance,
                           profile=args.profile, iters=args.iters, rounds=args.rounds)
    return 0 if report.ok else EXIT_MISMATCH


def _export_command(args) -> int:
    report = export_model(args.checkpoint, args.out, postprocess=args.postprocess, force=args.force,
                          check=not args.no_verify, format=args.format, delegate=args.delegate,
                          optimize=args.optimize)
    return 0 if report is None or report.ok else EXIT_MISMATCH


def _triton_command(args) -> int:
    if args.check:
        if args.artifact or args.repo:
            raise BadOptionError("--check DIR/NAME checks a model folder; give it without ARTIFACT and --repo")
        from torchport.triton import check_triton

        report = check_triton(args.check, atol=args.atol, rtol=args.rtol, threads=args.threads)
        print(report)
        return 0 if report.ok else EXIT_MISMATCH
    if not args.artifact or not args.repo:
        raise BadOptionError("triton: expected ARTIFACT --repo DIR (to write) or --check DIR/NAME (to check)")
    report = triton_export(
        args.artifact, args.repo, check=not args.no_check, name=args.name, version=args.model_version,
        max_batch_size=args.max_batch_size, dynamic_batching=args.dynamic_batching,
        max_queue_delay_us=args.max_queue_delay_us, preferred_batch_sizes=args.preferred_batch_size,
        instances=args.instances, instance_kind=args.instance_kind, force=args.force,
        atol=args.atol, rtol=args.rtol,
    )
    return 0 if report is None or report.ok else EXIT_MISMATCH


def _models_command(args) -> int:
    from torchport.models import describe_models

    print(describe_models())
    return 0


def _datasets_command(args) -> int:
    from torchport.data import describe_datasets

    print(describe_datasets())
    return 0


#: One function per command: each takes the parsed arguments, returns the exit code.
COMMANDS = {
    "inspect": _inspect_command,
    "verify": _verify_command,
    "run": _run_command,
    "demo": _demo_command,
    "train": _train_command,
    "bench": _bench_command,
    "tune": _tune_command,
    "export": _export_command,
    "triton": _triton_command,
    "models": _models_command,
    "datasets": _datasets_command,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``torchport`` with ``argv`` (default sys.argv[1:]); returns the exit code."""
    try:
        try:
            code = _run(argv)
        except SystemExit as e:  # argparse's --help, --version and usage errors
            code = 0 if e.code is None else e.code
        sys.stdout.flush()  # inside the try: a closed pipe fails here, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`torchport inspect m.pt | head -1`): not an error
        # of ours. Point stdout at /dev/null so Python's exit flush stays quiet.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # a stdout without a file descriptor (redirected in-process)
            pass
        return 0


def _run(argv: Optional[Sequence[str]]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.cmake_prefix_path:
        from torchport import cmake_prefix_path

        print(cmake_prefix_path)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except TorchportError as e:
        print(f"torchport: error[{e.kind}]: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        from torchport.train import TrainingInterrupted

        if isinstance(e, TrainingInterrupted):
            print(f"torchport: {e}", file=sys.stderr)
            if e.checkpoint is not None:
                print(f"torchport: resume with: {resume_command(argv, e.checkpoint.parent)}", file=sys.stderr)
            return 130
        print("torchport: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise  # main's: the reader closed stdout
    except Exception as e:  # noqa: BLE001 - a bug must still end in one line and a documented code
        print(f"torchport: internal error: {type(e).__name__}: {e} (please report it)", file=sys.stderr)
        return exit_code_of("runtime")


if __name__ == "__main__":
    sys.exit(main())
