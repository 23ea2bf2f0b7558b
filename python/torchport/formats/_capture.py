"""``torch.export`` capture, shared by the formats built on it (aoti, executorch, onnx):
the manifest's dynamic dims as ``Dim``s, and a refusal that names the user's line."""

from __future__ import annotations

import os
import re
import traceback
from typing import Any, Optional

import torch

from torchport.errors import ExportError
from torchport.formats._core import Job, Prepared, Tolerance


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    return name if name and not name[0].isdigit() else f"d_{name}"


def dynamic_shapes(job: Job, max: Optional[int] = None) -> tuple:
    """The manifest's dynamic dims as ``torch.export`` ``dynamic_shapes``: one
    ``Dim`` per name, shared by every dim with that name (so export knows they
    are equal), and one per unnamed dim. A named dim is at most its bound in the
    manifest (``dim_bounds``, or the model's ``max_position_embeddings``), and
    every dim at most ``max`` when given."""
    shared: dict[str, Any] = {}
    spec = []
    for n in job.names:
        dims = {}
        for d, label in sorted(job.dynamic.get(n, {}).items()):
            upper = job.asked_bound(n, d, max)
            bound = {} if upper is None else {"max": upper}
            if label is None:
                dims[d] = torch.export.Dim(_identifier(f"{n}_dim{d}"), **bound)
            else:
                dims[d] = shared.setdefault(label, torch.export.Dim(_identifier(label), **bound))
        spec.append(dims or None)
    return tuple(spec)


class _ByName(torch.nn.Module):
    """A keyword-called model as one that takes its tensors positionally, in the
    manifest's order, with the non-tensor arguments export used fixed: what
    torch.export captures, so that every runtime feeds the inputs in that order."""

    def __init__(self, model: torch.nn.Module, names: list[str], constants: dict[str, Any]) -> None:
        super().__init__()
        self.model, self.names, self.constants = model, list(names), dict(constants)

    def forward(self, *tensors):
        return self.model(**dict(zip(self.names, tensors)), **self.constants)


def shapes_for(module: torch.nn.Module, job: Job, max: Optional[int] = None) -> tuple:
    """``dynamic_shapes`` for ``module`` from ``example``: ``_ByName`` takes its
    tensors as one ``*tensors`` argument."""
    spec = dynamic_shapes(job, max)
    return (spec,) if isinstance(module, _ByName) else spec


def example(job: Job) -> tuple[torch.nn.Module, tuple]:
    """(module, example args) that torch.export captures: the model on its tensors,
    or for a keyword call the model behind ``_ByName``."""
    if not job.call.by_keyword:
        return job.model, tuple(job.inputs)
    return _ByName(job.model, job.call.names, job.call.constants).eval(), tuple(job.inputs)


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


def capture(job: Job, max: Optional[int] = None):
    """``torch.export.export`` of the job's model; an ExportError naming the
    construct and line it could not capture, and suggesting TorchScript, otherwise."""
    module, args = example(job)
    try:
        return torch.export.export(module, args, dynamic_shapes=shapes_for(module, job, max), strict=False)
    except Exception as e:  # noqa: BLE001 - torch.export raises many error types
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        # The first line, plus torch's own explanation of a violated shape
        # constraint ("- You marked x_dim1 as dynamic but your code specialized it...").
        reason = " ".join([lines[0] if lines else type(e).__name__]
                          + [line[2:].split(". If you")[0] for line in lines[1:] if line.startswith("- ")])
        raise ExportError(
            f"torch.export could not capture {job.model_name}: {reason} "
            f"({type(e).__name__} at {_where(e)}). Data-dependent control flow and constructs torch.export "
            "does not support need rewriting (torch.cond, torch._check); or export with format='torchscript', "
            "which scripts such code"
        ) from e


def prepare_exported(job: Job, export_method: str, tolerance: Tolerance) -> Prepared:
    """``Format.prepare`` of the formats captured with torch.export: the model
    itself runs, called as export called it (tensors by name for a keyword call,
    with the non-tensor arguments, which the capture makes constants)."""
    return Prepared(run=job.run_model, export_method=export_method, tolerance=dict(tolerance) if tolerance else None)
