"""The ``torchport`` command: a thin layer over the Python API.

    torchport inspect model.pt
    torchport verify model.pt [--inputs FILE] [--atol A] [--rtol R] [--json]
    torchport run model.pt --input in.pt --output out.pt
    torchport demo
    torchport --cmake-prefix-path

Exit codes match torchport-run: 0 ok, 1 parity mismatch, 2 usage or bad option,
3 artifact missing or unreadable, 4 bad input, 5 the model failed while running.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

from torchport._version import __version__
from torchport.errors import ArtifactNotFoundError, BadInputError, TorchportError
from torchport.manifest import payload_checksum, read_manifest

EXIT_MISMATCH = 1


def inspect_artifact(path: str, *, as_json: bool = False) -> str:
    """The manifest as readable text (or JSON)."""
    m = read_manifest(path)
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
    if m.checksum:
        ok = payload_checksum(path) == m.checksum
        lines.append(f"  payload checksum: {m.checksum[:19]}... {'verified' if ok else 'MISMATCH: modified after export'}")
    if m.metadata:
        lines.append("  metadata:")
        lines += [f"    {k}: {json.dumps(v)}" for k, v in m.metadata.items()]
    return "\n".join(lines)


def load_tensors(path: str) -> Any:
    """A torch.save file of tensors, read without executing code (weights_only)."""
    import torch

    if not Path(path).exists():
        raise ArtifactNotFoundError(f"input file '{path}' does not exist")
    try:
        return torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load raises many types
        raise BadInputError(f"input file '{path}' is not a tensor file torch.load can read safely: {e}") from None


def save_tensors(path: str, tensors: Sequence[Any]) -> None:
    """One tensor as a tensor, several as a tuple; replaced atomically."""
    import torch

    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    os.close(fd)
    try:
        torch.save(tensors[0] if len(tensors) == 1 else tuple(tensors), tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_artifact(path: str, input_file: str, output_file: str, *, device: str = "cpu", threads: Optional[int] = None) -> None:
    """Runs an artifact in the C++ runtime on a tensor file; writes the outputs."""
    from torchport.native import NativeModel, read_tensor_file

    model = NativeModel(path, device=device, threads=threads)
    data = read_tensor_file(input_file)  # the runtime's own reader, as torchport-run predict uses
    if isinstance(data, (list, tuple)):
        outputs = model.run(*data)
    else:
        outputs = model.run(data)
    save_tensors(output_file, outputs)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="torchport",
        description="Ship PyTorch models to native code: inspect, verify and run torchport artifacts.",
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
        help="compare eager/TorchScript/C++ outputs",
        description="Run the same inputs through Python TorchScript, the C++ runtime (binding) and the "
        "torchport-run binary, and compare with the golden outputs (or, with --inputs, with Python "
        "TorchScript). Exit 1 on mismatch.",
    )
    s.add_argument("artifact")
    s.add_argument("--inputs", metavar="FILE", help="torch.save file of inputs (tensor, list, or dict by name)")
    s.add_argument("--atol", type=float, default=0.0, help="absolute tolerance (default 0: exact)")
    s.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0: exact)")
    s.add_argument("--threads", type=int, default=None, help="intra-op threads for every runtime")
    s.add_argument("--json", action="store_true", help="print the report as JSON")

    s = sub.add_parser(
        "run",
        help="run an artifact in the C++ runtime",
        description="Run an artifact in the C++ runtime on a torch.save file of inputs; write the outputs "
        "(a tensor for one output, else a tuple) with torch.save.",
    )
    s.add_argument("artifact")
    s.add_argument("--input", required=True, metavar="FILE")
    s.add_argument("--output", required=True, metavar="FILE")
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
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
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
        if args.command == "inspect":
            print(inspect_artifact(args.artifact, as_json=args.json))
            return 0
        if args.command == "verify":
            from torchport.parity import verify

            inputs = load_tensors(args.inputs) if args.inputs else None
            report = verify(args.artifact, inputs=inputs, atol=args.atol, rtol=args.rtol, threads=args.threads)
            print(report.to_json() if args.json else report)
            return 0 if report.ok else EXIT_MISMATCH
        if args.command == "run":
            run_artifact(args.artifact, args.input, args.output, device=args.device, threads=args.threads)
            return 0
        if args.command == "demo":
            from torchport.demo import run_demo

            return 0 if run_demo(out=Path(args.out), epochs=args.epochs, seed=args.seed) else EXIT_MISMATCH
    except TorchportError as e:
        print(f"torchport: error: {e}", file=sys.stderr)
        return e.exit_code
    return 2


if __name__ == "__main__":
    sys.exit(main())
