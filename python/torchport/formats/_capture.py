"""``torch.export`` capture, shared by the formats built on it (aoti, executorch, onnx):
the manifest's dynamic dims as ``Dim``s, and a refusal that names the user's line."""

from __future__ import annotations

import os
import re
import traceback
from typing import Any, Optional

import torch

from torchport.errors import BadOptionError, ExportError
from torchport.formats._core import Job, Prepared, Tolerance


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    return name if name and not name[0].isdigit() else f"d_{name}"


def dynamic_shapes(dynamic: dict[str, dict[int, Optional[str]]], names: list[str], max: Optional[int] = None) -> tuple:
    """The manifest's dynamic dims as ``torch.export`` ``dynamic_shapes``: one
    ``Dim`` per name, shared by every dim with that name (so export knows they
    are equal), and one per unnamed dim; each at most ``max`` when given."""
    bound = {} if max is None else {"max": max}
    shared: dict[str, Any] = {}
    spec = []
    for n in names:
        dims = {}
        for d, label in sorted(dynamic.get(n, {}).items()):
            if label is None:
                dims[d] = torch.export.Dim(_identifier(f"{n}_dim{d}"), **bound)
            else:
                dims[d] = shared.setdefault(label, torch.export.Dim(_identifier(label), **bound))
        spec.append(dims or None)
    return tuple(spec)


_CALL = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.+)')


def _where(e: BaseException) -> str:
    """'file:line in fn: code' of the user's construct that torch.export refused."""
    text = str(e)
    marker = text.find("The following call raised this error")
    m = _CALL.search(text, marker if marker >= 0 else 0)
    if m:
        return f"{m.group(1)}:{m.group(2)} in {m.group(3)}: {m.group(4).strip()}"
    torch_dir = os.path.dirname(torch.__file__)
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith(torch_dir)]
    if frames and frames[-1].filename != __file__:
        f = frames[-1]
        return f"{f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}"
    return "unknown location"


def capture(model: torch.nn.Module, inputs: tuple, dynamic: dict, names: list[str], max: Optional[int] = None):
    """``torch.export.export`` of ``model``; an ExportError naming the construct
    and line it could not capture, and suggesting TorchScript, otherwise."""
    try:
        return torch.export.export(model, inputs, dynamic_shapes=dynamic_shapes(dynamic, names, max), strict=False)
    except Exception as e:  # noqa: BLE001 - torch.export raises many error types
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        # The first line, plus torch's own explanation of a violated shape
        # constraint ("- You marked x_dim1 as dynamic but your code specialized it...").
        reason = " ".join([lines[0] if lines else type(e).__name__]
                          + [line[2:].split(". If you")[0] for line in lines[1:] if line.startswith("- ")])
        raise ExportError(
            f"torch.export could not capture {type(model).__name__}: {reason} "
            f"({type(e).__name__} at {_where(e)}). Data-dependent control flow and constructs torch.export "
            "does not support need rewriting (torch.cond, torch._check); or export with format='torchscript', "
            "which scripts such code"
        ) from e


def prepare_exported(job: Job, export_method: str, tolerance: Tolerance) -> Prepared:
    """``Format.prepare`` of the formats captured with torch.export: the model
    itself runs, on positional tensors; what only TorchScript carries is refused."""
    if job.call.kwargs or job.call.changed:
        raise BadOptionError(f"format={job.format!r}: keyword inputs and non-default non-tensor arguments are "
                             "carried by TorchScript artifacts only; pass the tensors positionally")
    return Prepared(run=lambda tensors: job.model(*tensors), export_method=export_method,
                    tolerance=dict(tolerance) if tolerance else None)
