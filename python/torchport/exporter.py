"""Export a model to a torchport artifact: TorchScript plus contract plus golden examples.

    >>> import torch, torchport
    >>> model = torch.nn.Linear(4, 2)
    >>> torchport.export(model, torch.rand(3, 4), "linear.pt")
    PosixPath('linear.pt')
"""

from __future__ import annotations

import datetime as _dt
import inspect
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import torch

from torchport._version import __version__
from torchport.errors import BadOptionError, ExportError
from torchport.manifest import GOLDEN_FILE, MANIFEST_FILE, SCHEMA, Manifest, TensorSpec

METHODS = ("auto", "script", "trace")


class ExportWarning(UserWarning):
    """Export did something the caller should know about (such as falling back to tracing)."""


def _jit(fn, *args, **kwargs):
    # torch.jit.script/trace/save/load emit "`torch.jit.X` is deprecated" in
    # this torch; TorchScript is the format we ship, so silence exactly that.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        return fn(*args, **kwargs)


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"`` (the manifest's dtype names)."""
    return str(dtype).replace("torch.", "")


def _as_tuple(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    items = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    if not items:
        raise BadOptionError("example_inputs: expected at least one tensor, got none")
    for i, t in enumerate(items):
        if not isinstance(t, torch.Tensor):
            raise BadOptionError(f"example_inputs[{i}]: expected a tensor, got {type(t).__name__}")
    return tuple(t.detach() for t in items)


def _outputs_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    items = (out,) if isinstance(out, torch.Tensor) else out
    if not isinstance(items, (tuple, list)) or not all(isinstance(t, torch.Tensor) for t in items):
        raise BadOptionError(
            f"the model returned {type(out).__name__}; torchport exports models that return a tensor "
            "or a tuple of tensors"
        )
    return tuple(items)


def _forward_arg_names(model: torch.nn.Module, count: int) -> list[str]:
    try:
        params = [
            p.name
            for p in inspect.signature(model.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    if len(params) >= count:
        return params[:count]
    return ["input" if count == 1 else f"input_{i}" for i in range(count)]


def _names(given: Optional[Sequence[str]], default: list[str], what: str) -> list[str]:
    if given is None:
        return default
    names = list(given)
    if len(names) != len(default):
        raise BadOptionError(f"{what}: expected {len(default)} names, got {len(names)} ({names})")
    if len(set(names)) != len(names):
        raise BadOptionError(f"{what}: names must be unique, got {names}")
    return names


def _dynamic(
    dynamic_dims: Optional[Mapping[str, Iterable[int]]], names: list[str], inputs: tuple[torch.Tensor, ...]
) -> dict[str, set[int]]:
    if dynamic_dims is None:  # the batch dimension of every input
        return {n: ({0} if t.dim() > 0 else set()) for n, t in zip(names, inputs)}
    unknown = set(dynamic_dims) - set(names)
    if unknown:
        raise BadOptionError(f"dynamic_dims: unknown input names {sorted(unknown)}; inputs are {names}")
    out: dict[str, set[int]] = {}
    for n, t in zip(names, inputs):
        dims = list(dynamic_dims.get(n, ()))
        bad = [d for d in dims if not -t.dim() <= d < t.dim()]
        if bad:
            raise BadOptionError(f"dynamic_dims['{n}']: dims {bad} out of range for shape {list(t.shape)}")
        out[n] = {d % t.dim() for d in dims}
    return out


def _output_shapes(
    module: torch.jit.ScriptModule,
    inputs: tuple[torch.Tensor, ...],
    outputs: tuple[torch.Tensor, ...],
    dynamic: dict[str, set[int]],
    names: list[str],
) -> list[tuple[Optional[int], ...]]:
    """Which output dims follow the dynamic input dims: found by running the
    exported module once more with every dynamic input dim doubled."""
    shapes = [tuple(o.shape) for o in outputs]
    if not any(dynamic.values()):
        return shapes
    probe = []
    for n, t in zip(names, inputs):
        for d in sorted(dynamic[n]):
            t = torch.cat([t, t], dim=d)
        probe.append(t)
    try:
        with torch.inference_mode():
            grown = _outputs_tuple(module(*probe))
    except Exception:  # noqa: BLE001 - a model may refuse other sizes; fall back to the batch dim
        batch_dynamic = all(0 in dynamic[n] for n in names)
        return [tuple(None if (i == 0 and batch_dynamic) else d for i, d in enumerate(s)) for s in shapes]
    return [
        tuple(None if (len(g.shape) == len(s) and g.shape[i] != d) else d for i, d in enumerate(s))
        for s, g in zip(shapes, grown)
    ]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _compile(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], method: str):
    def trace():
        try:
            return _jit(torch.jit.trace, model, inputs), "trace"
        except Exception as e:  # noqa: BLE001 - tracing fails with many error types
            raise ExportError(f"torch.jit.trace failed: {_first_line(e)}") from e

    if method == "trace":
        return trace()
    try:
        return _jit(torch.jit.script, model), "script"
    except Exception as e:  # noqa: BLE001 - scripting fails with many error types
        if method == "script":
            raise ExportError(
                f"torch.jit.script failed: {_first_line(e)} (method='auto' would fall back to tracing)"
            ) from e
        warnings.warn(
            f"torch.jit.script failed ({_first_line(e)}); exporting with torch.jit.trace instead, which records "
            "the path taken on the example inputs: data-dependent control flow is frozen",
            ExportWarning,
            stacklevel=3,
        )
        return trace()


def _atomic_jit_save(module, path: Path, extra_files: dict[str, bytes]) -> None:
    # Saved under its final name in a private folder beside the destination
    # (TorchScript names the archive's root after the file), then renamed over
    # it: readers see the old file or the complete new one, never a part.
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = tmp_dir / path.name
    try:
        _jit(torch.jit.save, module, str(tmp), _extra_files=extra_files)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_dir.rmdir()


def export(
    model: torch.nn.Module,
    example_inputs: Union[torch.Tensor, Sequence[torch.Tensor]],
    path: Union[str, Path],
    *,
    method: str = "auto",
    input_names: Optional[Sequence[str]] = None,
    output_names: Optional[Sequence[str]] = None,
    dynamic_dims: Optional[Mapping[str, Iterable[int]]] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    name: Optional[str] = None,
) -> Path:
    """Export ``model`` to a TorchScript artifact at ``path`` with its contract and golden examples.

    ``method="auto"`` scripts and falls back to tracing with an ``ExportWarning``
    saying why. The model is put in eval mode. Input names default to the names
    of ``forward``'s arguments; ``dynamic_dims`` maps an input name to its
    dynamic dims (default: dim 0 of every input). The file is written atomically.

        >>> export(model, (tokens, mask), "m.pt", dynamic_dims={"tokens": [0, 1], "mask": [0, 1]},
        ...        metadata={"labels": ["neg", "pos"]})
    """
    if method not in METHODS:
        raise BadOptionError(f"method: expected one of {METHODS}, got {method!r}")
    if not isinstance(model, torch.nn.Module):
        raise BadOptionError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    meta = dict(metadata or {})
    try:
        json.dumps(meta)
    except TypeError as e:
        raise BadOptionError(f"metadata: must be JSON-serialisable ({e})") from None
    path = Path(path)
    if not path.parent.exists():
        raise BadOptionError(f"path: folder '{path.parent}' does not exist")

    inputs = _as_tuple(example_inputs)
    model.eval()
    with torch.inference_mode():
        outputs = _outputs_tuple(model(*inputs))
    in_names = _names(input_names, _forward_arg_names(model, len(inputs)), "input_names")
    out_default = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    out_names = _names(output_names, out_default, "output_names")
    dynamic = _dynamic(dynamic_dims, in_names, inputs)

    module, used = _compile(model, inputs, method)
    out_shapes = _output_shapes(module, inputs, outputs, dynamic, in_names)

    manifest = Manifest(
        name=name or type(model).__name__,
        inputs=[
            TensorSpec(n, dtype_name(t.dtype), tuple(None if d in dynamic[n] else s for d, s in enumerate(t.shape)))
            for n, t in zip(in_names, inputs)
        ],
        outputs=[TensorSpec(n, dtype_name(o.dtype), s) for n, o, s in zip(out_names, outputs, out_shapes)],
        schema=SCHEMA,
        torchport_version=__version__,
        torch_version=torch.__version__,
        export_method=used,
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        metadata=meta,
        golden=True,
    )
    golden = io.BytesIO()
    torch.save(
        {
            "inputs": [t.cpu().contiguous().clone() for t in inputs],
            "outputs": [o.cpu().contiguous().clone() for o in outputs],
        },
        golden,
    )
    _atomic_jit_save(
        module,
        path,
        {MANIFEST_FILE: manifest.to_json().encode(), GOLDEN_FILE: golden.getvalue()},
    )
    return path
