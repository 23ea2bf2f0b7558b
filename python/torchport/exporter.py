"""Export a model to a torchport artifact: the model (TorchScript, an AOTInductor
``.pt2`` package or ONNX) plus contract plus golden examples.

    >>> import torch, torchport
    >>> model = torch.nn.Linear(4, 2)
    >>> torchport.export(model, torch.rand(3, 4), "linear.pt")
    PosixPath('linear.pt')
    >>> torchport.export(model, torch.rand(3, 4), "linear.pt2", format="aoti")
    PosixPath('linear.pt2')
"""

from __future__ import annotations

import datetime as _dt
import inspect
import io
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import torch

from torchport._files import write_bytes
from torchport._version import __version__
from torchport.errors import BadArtifactError, BadOptionError, ExportError
from torchport.manifest import Manifest, TensorSpec, payload_checksum
from torchport.native import load_native

METHODS = ("auto", "script", "trace")
#: what ``export(format=...)`` accepts; "all" writes every format side by side
EXPORT_FORMATS = ("torchscript", "aoti", "onnx", "executorch", "all")


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


DimNames = dict[int, Optional[str]]  # dynamic dim -> its name (None: unnamed)


def _dynamic(
    dynamic_dims: Optional[Mapping[str, Any]], names: list[str], inputs: tuple[torch.Tensor, ...]
) -> dict[str, DimNames]:
    if dynamic_dims is None:  # the batch dimension of every input, shared
        return {n: ({0: "batch"} if t.dim() > 0 else {}) for n, t in zip(names, inputs)}
    unknown = set(dynamic_dims) - set(names)
    if unknown:
        raise BadOptionError(f"dynamic_dims: unknown input names {sorted(unknown)}; inputs are {names}")
    out: dict[str, DimNames] = {}
    for n, t in zip(names, inputs):
        spec = dynamic_dims.get(n, ())
        # {dim: name} names dims; a plain list keeps dim 0 as the shared "batch".
        given = dict(spec) if isinstance(spec, Mapping) else {d: ("batch" if d in (0, -t.dim()) else None) for d in spec}
        bad = [d for d in given if not isinstance(d, int) or not -t.dim() <= d < t.dim()]
        if bad:
            raise BadOptionError(f"dynamic_dims['{n}']: dims {bad} out of range for shape {list(t.shape)}")
        bad_names = [v for v in given.values() if v is not None and (not isinstance(v, str) or not v)]
        if bad_names:
            raise BadOptionError(f"dynamic_dims['{n}']: dim names must be non-empty strings or None, got {bad_names}")
        out[n] = {d % t.dim(): v for d, v in given.items()}
    return out


def _output_shapes(
    module: torch.jit.ScriptModule,
    inputs: tuple[torch.Tensor, ...],
    outputs: tuple[torch.Tensor, ...],
    dynamic: dict[str, DimNames],
    names: list[str],
) -> list[tuple[Union[int, str, None], ...]]:
    """Which output dims follow which dynamic input dims, found by running the
    exported module again with each group of input dims (one name, or all the
    unnamed ones) doubled. An output dim moved by exactly one named group
    carries its name; by several, or by unnamed dims, it is dynamic and unnamed."""
    movers: list[list[set]] = [[set() for _ in o.shape] for o in outputs]
    groups = {v for dims in dynamic.values() for v in dims.values()}
    for group in sorted(groups, key=lambda g: (g is None, g or "")):
        probe = []
        for n, t in zip(names, inputs):
            for d, label in sorted(dynamic[n].items()):
                if label == group:
                    t = torch.cat([t, t], dim=d)
            probe.append(t)
        try:
            with torch.inference_mode():
                grown = _outputs_tuple(module(*probe))
        except Exception:  # noqa: BLE001 - a model may refuse other sizes
            # Fall back to the one safe guess: a batch shared by every input.
            if group == "batch" and all(dynamic[n].get(0) == "batch" for n in names):
                for m in movers:
                    if m:
                        m[0].add(group)
            continue
        for m, o, g in zip(movers, outputs, grown):
            for i in range(len(m)):
                if g.dim() != o.dim() or g.shape[i] != o.shape[i]:
                    m[i].add(group)
    shapes = []
    for m, o in zip(movers, outputs):
        dims: list[Union[int, str, None]] = []
        for size, groups_moving in zip(o.shape, m):
            if not groups_moving:
                dims.append(int(size))
            elif len(groups_moving) == 1 and isinstance(next(iter(groups_moving)), str):
                dims.append(next(iter(groups_moving)))
            else:
                dims.append(None)
        shapes.append(tuple(dims))
    return shapes


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


def _archive(module, extra_files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    _jit(torch.jit.save, module, buf, _extra_files=extra_files)
    return buf.getvalue()


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
    overwrite: bool = False,
    format: str = "torchscript",
    delegate: Optional[str] = None,
) -> Union[Path, dict[str, Path]]:
    """Export ``model`` to an artifact at ``path`` with its contract and golden examples.

    ``format`` picks the container (docs/artifact.md): ``"torchscript"`` (the
    default), ``"aoti"`` (torch.export + AOTInductor, a ``.pt2`` package the C++
    runtime runs as well), ``"onnx"`` (torch.onnx's dynamo exporter; ONNX Runtime
    runs it from Python), or ``"all"``: each of them beside ``path`` with the
    suffixes .pt, .pt2 and .onnx, verified against eager and against each other
    before returning ``{format: path}``; or ``"executorch"``: an ExecuTorch
    ``.pte`` for mobile and edge devices, lowered to ``delegate`` ("xnnpack",
    the default, or "none"), with dynamic dims bounded by
    ``formats.EXECUTORCH_DIM_MAX``. ``method`` applies to TorchScript.

    ``method="auto"`` scripts and falls back to tracing with an ``ExportWarning``
    saying why. The model is put in eval mode. Input names default to the names
    of ``forward``'s arguments. ``dynamic_dims`` maps an input name to its
    dynamic dims: a list (dim 0 is then the shared ``"batch"``, others unnamed)
    or ``{dim: name}`` (dims with one name must agree across inputs); the
    default makes dim 0 of every input the shared ``"batch"``. The file is
    written atomically, with a checksum of the model payload that the runtime
    verifies at load, and only once the runtime that will run it has loaded
    the bytes (a .pt2 or ONNX model must also reproduce the golden outputs
    within its format's tolerance); an existing file is replaced only with
    ``overwrite=True``.

        >>> export(model, (tokens, mask), "m.pt",
        ...        dynamic_dims={"tokens": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}},
        ...        metadata={"labels": ["neg", "pos"]})
    """
    if method not in METHODS:
        raise BadOptionError(f"method: expected one of {METHODS}, got {method!r}")
    if format not in EXPORT_FORMATS:
        raise BadOptionError(f"format: expected one of {EXPORT_FORMATS}, got {format!r}")
    if delegate is not None:
        from torchport.formats import DELEGATES

        if format != "executorch":
            raise BadOptionError(f"delegate: applies to format 'executorch', got format {format!r}")
        if delegate not in DELEGATES:
            raise BadOptionError(f"delegate: expected one of {DELEGATES}, got {delegate!r}")
    if not isinstance(model, torch.nn.Module):
        raise BadOptionError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    meta = dict(metadata or {})
    try:
        json.dumps(meta)
    except TypeError as e:
        raise BadOptionError(f"metadata: must be JSON-serialisable ({e})") from None
    path = Path(path)
    if not path.parent.is_dir():
        raise BadOptionError(f"path: folder '{path.parent}' does not exist")
    if format == "all":
        from torchport.formats import FORMATS, SUFFIXES, cross_check

        targets = {f: path.with_suffix(SUFFIXES[f]) for f in FORMATS}
        existing = [str(p) for p in targets.values() if p.exists()]
        if existing and not overwrite:
            raise BadOptionError(f"path: {existing} already exist; pass overwrite=True to replace them")
        written = {
            f: export(model, example_inputs, p, method=method, input_names=input_names, output_names=output_names,
                      dynamic_dims=dynamic_dims, metadata=metadata, name=name, overwrite=overwrite, format=f)
            for f, p in targets.items()
        }
        cross_check(written)
        return written
    if path.exists() and not overwrite:
        raise BadOptionError(f"path: '{path}' already exists; pass overwrite=True to replace it")

    inputs = _as_tuple(example_inputs)
    model.eval()
    with torch.inference_mode():
        outputs = _outputs_tuple(model(*inputs))
    in_names = _names(input_names, _forward_arg_names(model, len(inputs)), "input_names")
    out_default = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    out_names = _names(output_names, out_default, "output_names")
    dynamic = _dynamic(dynamic_dims, in_names, inputs)

    if format == "torchscript":
        module, used = _compile(model, inputs, method)
        out_shapes = _output_shapes(module, inputs, outputs, dynamic, in_names)
    else:
        from torchport import formats

        used = formats.EXPORT_METHODS[format]
        out_shapes = _output_shapes(model, inputs, outputs, dynamic, in_names)

    golden = io.BytesIO()
    torch.save(
        {
            "inputs": [t.cpu().contiguous().clone() for t in inputs],
            "outputs": [o.cpu().contiguous().clone() for o in outputs],
        },
        golden,
    )
    manifest = Manifest(
        name=name or type(model).__name__,
        inputs=[
            TensorSpec(n, dtype_name(t.dtype), tuple(dynamic[n][d] if d in dynamic[n] else s for d, s in enumerate(t.shape)))
            for n, t in zip(in_names, inputs)
        ],
        outputs=[TensorSpec(n, dtype_name(o.dtype), s) for n, o, s in zip(out_names, outputs, out_shapes)],
        schema=load_native().MANIFEST_SCHEMA,
        torchport_version=__version__,
        torch_version=torch.__version__,
        export_method=used,
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        metadata=meta,
        golden=True,
        format=format,
    )
    native = load_native()
    try:  # the runtime's rules decide what a manifest may hold (dtypes, names, metadata)
        manifest.validated(f"export of '{path}': manifest")
    except BadArtifactError as e:
        raise ExportError(f"the runtime would refuse this artifact: {e}") from None
    if format != "torchscript":
        return _export_other(format, model, inputs, dynamic, in_names, out_names, manifest, golden.getvalue(), path,
                             overwrite, delegate)
    # The checksum covers every record but the manifest, so it is taken from a
    # first save without it; the records do not change between saves.
    manifest.checksum = payload_checksum(_archive(module, {native.GOLDEN_FILE: golden.getvalue()}))
    data = _archive(module, {native.MANIFEST_FILE: manifest.to_json().encode(), native.GOLDEN_FILE: golden.getvalue()})
    if payload_checksum(data) != manifest.checksum:
        raise ExportError("torch.jit.save wrote different model records on two saves; cannot checksum the payload")
    # Loaded by the runtime's own reader before anything is written: export
    # never leaves a file that the runtime refuses.
    try:
        native.load_from_memory(data, str(path))
    except (BadArtifactError, BadOptionError) as e:
        raise ExportError(f"the runtime refuses the exported model, so nothing was written: {e}") from None
    write_bytes(path, data, overwrite=overwrite)
    return path


def _export_other(fmt: str, model, inputs, dynamic, in_names, out_names, manifest: Manifest, golden: bytes,
                  path: Path, overwrite: bool, delegate: Optional[str] = None) -> Path:
    """The .pt2, .pte or ONNX artifact, checked by the runtime that will run it before it is written."""
    from torchport import formats

    manifest.tolerance = formats.tolerance(fmt, delegate)
    if fmt == "executorch":
        delegate = delegate or formats.DELEGATES[0]
        program, seconds = formats.compile_executorch(model, inputs, dynamic, in_names, delegate)
        import executorch.version

        bounds = formats.pte_input_bounds(program)
        manifest.metadata[formats.COMPILE_KEY] = {
            "seconds": round(seconds, 2), "torch": torch.__version__, "executorch": executorch.version.__version__,
            "delegate": delegate, "dim_max": formats.EXECUTORCH_DIM_MAX, "input_bounds": bounds,
        }
        low = [f"input '{n}' dim {d}: at most {b[d]}" for n, b in zip(in_names, bounds)
               for d in dynamic.get(n, {}) if d < len(b) and b[d] < formats.EXECUTORCH_DIM_MAX]
        if low:
            warnings.warn(
                f"ExecuTorch ({delegate}) planned memory for smaller dynamic dims than the {formats.EXECUTORCH_DIM_MAX} "
                f"asked for ({'; '.join(low)}); larger inputs are refused at run time (BadInputError)",
                ExportWarning, stacklevel=3)
        data = formats.package_executorch(program, manifest, golden)
    elif fmt == "aoti":
        package, seconds = formats.compile_aoti(model, inputs, dynamic, in_names)
        manifest.metadata[formats.COMPILE_KEY] = {
            "seconds": round(seconds, 2), "torch": torch.__version__, "inductor_configs": formats.INDUCTOR_CONFIGS,
        }
        data = formats.package_aoti(package, manifest, golden)
    else:
        data = formats.export_onnx(model, inputs, dynamic, in_names, out_names, manifest, golden)
    formats.runtime_check(fmt, data, str(path), manifest.tolerance)
    if fmt == "executorch":
        # the sizes the manifest allows beyond the example's: 1 and the planned bound
        formats.executorch_extremes_check(model, data, str(path), inputs, dynamic, in_names, bounds, manifest.tolerance)
    write_bytes(path, data, overwrite=overwrite)
    return path
