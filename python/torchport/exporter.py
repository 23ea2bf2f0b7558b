"""Export a model to a torchport artifact: the model (TorchScript, an AOTInductor
``.pt2`` package, ONNX or an ExecuTorch ``.pte``) plus contract plus golden examples.

``export`` is a driver over ``torchport.formats``: it binds the example to
``forward``, asks the format to prepare the model, derives the contract (names,
dynamic and data-dependent dims, the outputs' structure), and has the format
build and check the bytes before they are written.

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
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from torchport import formats
from torchport import optimize as levels
from torchport._ext import load_native
from torchport._files import write_bytes
from torchport._version import __version__
from torchport._warnings import jit as _jit  # noqa: F401 - the one jit-warning filter, imported from here by tests
from torchport.errors import BadArtifactError, BadOptionError, ExportError, ExportWarning  # noqa: F401 - re-exported
from torchport.formats import Call as _Call, Format, Job, Prepared, output_tensors
from torchport.formats._core import warn_user
from torchport.formats.torchscript import CUSTOM_OPS_KEY, METHODS  # noqa: F401 - re-exported
from torchport.formats.torchscript import compile_module as _compile  # noqa: F401 - imported from here by tests
from torchport.manifest import FeatureSpec, Manifest, TensorSpec

#: what ``export(format=...)`` accepts; "all" writes every format side by side
EXPORT_FORMATS = (*formats.REGISTRY, "all")
_outputs_tuple = output_tensors  # the runtime's flattening of forward's outputs


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"`` (the manifest's dtype names)."""
    return str(dtype).replace("torch.", "")


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


#: the non-tensor argument types a manifest can carry (its "constants")
_CONSTANT_TYPES = (bool, int, float, str, type(None))


def _bind(model: torch.nn.Module, example_inputs: Any, example_kwargs: Optional[Mapping[str, Any]]) -> _Call:
    """Matches the example to ``forward``'s parameters, as Python would call it.
    Positional tensors only, with no other parameters: the inputs as before
    (named after the parameters, else ``input``/``input_N``)."""
    if isinstance(example_inputs, Mapping):
        if example_kwargs is not None:
            raise BadOptionError("example_kwargs: give the inputs either as a dict or as example_kwargs, not both")
        example_kwargs, example_inputs = example_inputs, ()
    if example_inputs is None:
        example_inputs = ()
    args = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    kwargs = dict(example_kwargs or {})
    if not args and not kwargs:
        raise BadOptionError("example_inputs: expected at least one tensor, got none")
    for i, t in enumerate(args):
        if not isinstance(t, torch.Tensor):
            raise BadOptionError(
                f"example_inputs[{i}]: expected a tensor, got {type(t).__name__}"
                + ("; pass non-tensor arguments by name in example_kwargs" if isinstance(t, _CONSTANT_TYPES) else "")
            )
    bad_keys = [k for k in kwargs if not isinstance(k, str)]
    if bad_keys:
        raise BadOptionError(f"example_kwargs: keys must be forward()'s parameter names, got {bad_keys!r}")
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        sig = None
    params = [] if sig is None else [p for p in sig.parameters.values()
                                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if sig is not None and params:
        try:
            bound = sig.bind_partial(*args, **kwargs).arguments
        except TypeError as e:
            raise BadOptionError(f"example inputs do not fit {type(model).__name__}.forward{sig}: {e}") from None
    else:
        bound = {}
    if not kwargs and len(args) >= len(params) and all(p.kind != p.KEYWORD_ONLY for p in params):
        # The original form: positional tensors, one per parameter (or *args).
        tensors = tuple(t.detach() for t in args)
        return _Call(_forward_arg_names(model, len(tensors)), tensors, {}, {}, args, kwargs, False)
    names, tensors, constants, changed = [], [], {}, {}
    for p in params:
        given = p.name in bound
        value = bound[p.name] if given else p.default
        if value is inspect.Parameter.empty:
            raise BadOptionError(f"example inputs: forward() argument '{p.name}' has no example value and no default")
        if isinstance(value, torch.Tensor):
            names.append(p.name)
            tensors.append(value.detach())
        elif isinstance(value, _CONSTANT_TYPES) and not (isinstance(value, float) and not math.isfinite(value)):
            constants[p.name] = value
            if given and (p.default is inspect.Parameter.empty or value != p.default):
                changed[p.name] = value
        else:
            raise BadOptionError(
                f"forward() argument '{p.name}' is {'given' if given else 'defaulted to'} a {type(value).__name__}; "
                "an artifact carries tensors (the inputs) and int, float, bool, str or None values (recorded in "
                "the manifest): pass it as one of those, or leave it out if it has a default"
            )
    extra = [n for n in bound if n not in {p.name for p in params}]
    if extra:
        raise BadOptionError(
            f"example inputs: {extra} go to forward()'s *args/**kwargs, which an artifact cannot name; "
            "pass tensors to named parameters"
        )
    if not tensors:
        raise BadOptionError("example inputs: no argument is a tensor; an artifact needs at least one tensor input")
    defaulted = [f"{n}={constants[n]!r}" for n in constants if n not in bound]
    if defaulted:
        warn_user(f"{type(model).__name__}.forward() arguments the example leaves out are fixed at their defaults "
                  f"in the artifact: {', '.join(defaulted)}; give one in example_kwargs to change that (a tensor "
                  "makes it an input)")
    return _Call(names, tuple(tensors), constants, changed, args, kwargs, True)


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
    run: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]],
    inputs: tuple[torch.Tensor, ...],
    layout: Any,
    dynamic: dict[str, DimNames],
    names: list[str],
) -> tuple[list[tuple[Union[int, str, None], ...]], list[tuple[int, ...]]]:
    """Which output dims follow which dynamic input dims, found by running the
    exported module again with each group of input dims (one name, or all the
    unnamed ones) doubled. An output dim moved by exactly one named group
    carries its name; by several, or by unnamed dims, it is dynamic and unnamed.

    Then which depend on the values rather than the shapes: the same shapes
    with the values moved (every input flipped) and changed (float inputs
    negated). A dim that moves then, or differs between the items of a list
    per batch element, is data-dependent (detections kept): dynamic, unnamed,
    never "batch", and listed in the second result. Each output spec is
    judged over every tensor it describes (one per batch element in a list
    per batch element), by the set of sizes each dim takes."""

    def grouped(flat: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
        groups: list[list[torch.Tensor]] = [[] for _ in layout.names]
        for k, t in zip(layout.specs_for(len(flat)), flat):
            groups[k].append(t)  # IndexError: a count the structure does not describe
        return groups

    def sizes(group: list[torch.Tensor], i: int) -> set:
        return {t.shape[i] if t.dim() > i else None for t in group}

    base = grouped(layout.tensors)
    movers: list[list[set]] = [[set() for _ in g[0].shape] for g in base]
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
                grown = grouped(run(tuple(probe)))
        except Exception:  # noqa: BLE001 - a model may refuse other sizes
            # Fall back to the one safe guess: a batch shared by every input.
            if group == "batch" and all(dynamic[n].get(0) == "batch" for n in names):
                for m in movers:
                    if m:
                        m[0].add(group)
            continue
        for m, o, g in zip(movers, base, grown):
            for i in range(len(m)):
                if not g or sizes(g, i) != sizes(o, i):
                    m[i].add(group)
    data_dependent: list[set[int]] = [{i for i in range(g[0].dim()) if len(sizes(g, i)) > 1} for g in base]
    probes = [lambda: tuple(t.flip(list(range(t.dim()))) for t in inputs),
              lambda: tuple(-t if t.is_floating_point() else t for t in inputs)]
    for probe in probes:
        try:  # some dtypes have no flip or negation: then nothing is learnt
            with torch.inference_mode():
                moved = grouped(run(probe()))
        except Exception:  # noqa: BLE001 - a model may refuse other values
            continue
        for dd, o, g in zip(data_dependent, base, moved):
            for i in range(o[0].dim()):
                if not g or sizes(g, i) != sizes(o, i):
                    dd.add(i)
    shapes = []
    for m, o, dd in zip(movers, base, data_dependent):
        dims: list[Union[int, str, None]] = []
        for i, (size, groups_moving) in enumerate(zip(o[0].shape, m)):
            if i in dd:
                dims.append(None)
            elif not groups_moving:
                dims.append(int(size))
            elif len(groups_moving) == 1 and isinstance(next(iter(groups_moving)), str):
                dims.append(next(iter(groups_moving)))
            else:
                dims.append(None)
        shapes.append(tuple(dims))
    return shapes, [tuple(sorted(dd)) for dd in data_dependent]


def _bounds(model: torch.nn.Module, given: Optional[Mapping[str, Any]], dynamic: dict[str, DimNames],
            names: list[str], inputs: tuple[torch.Tensor, ...]) -> dict[str, dict[str, int]]:
    """{dim name: {"min", "max"}}: the user's bounds, else the model's position
    embeddings (``config.max_position_embeddings``) for dim 1 of integer inputs."""
    named = {label: (n, d) for n, dims in dynamic.items() for d, label in dims.items() if label}
    out: dict[str, dict[str, int]] = {}
    for label, b in dict(given or {}).items():
        if label not in named:
            raise BadOptionError(f"dim_bounds: '{label}' names no dynamic dim; named dims are {sorted(named)}")
        try:
            lo, hi = (int(x) for x in b)
        except (TypeError, ValueError):
            raise BadOptionError(f"dim_bounds['{label}']: expected (min, max), got {b!r}") from None
        if not 0 <= lo <= hi:
            raise BadOptionError(f"dim_bounds['{label}']: expected 0 <= min <= max, got ({lo}, {hi})")
        n, d = named[label]
        size = inputs[names.index(n)].shape[d]
        if not lo <= size <= hi:
            raise BadOptionError(f"dim_bounds['{label}']: ({lo}, {hi}) excludes the example's {n} dim {d} = {size}")
        out[label] = {"min": lo, "max": hi}
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        for n, t in zip(names, inputs):
            label = dynamic[n].get(1)
            if label and label != "batch" and label not in out and not t.is_floating_point():
                out[label] = {"min": 1, "max": positions}
    return out


def export(
    model: torch.nn.Module, example_inputs: Union[torch.Tensor, Sequence[torch.Tensor], Mapping[str, Any], None],
    path: Union[str, Path], *,
    example_kwargs: Optional[Mapping[str, Any]] = None, dim_bounds: Optional[Mapping[str, tuple[int, int]]] = None,
    method: str = "auto", input_names: Optional[Sequence[str]] = None, output_names: Optional[Sequence[str]] = None,
    dynamic_dims: Optional[Mapping[str, Iterable[int]]] = None, metadata: Optional[Mapping[str, Any]] = None,
    name: Optional[str] = None, overwrite: bool = False, format: str = "torchscript", delegate: Optional[str] = None,
    labels: Optional[Sequence[str]] = None, features: Optional[Sequence[Any]] = None, optimize: str = "none",
    images: Optional[Mapping[str, Any]] = None,
) -> Union[Path, dict[str, Path]]:
    """Export ``model`` to an artifact at ``path`` with its contract and golden examples.

    ``format`` (docs/artifact.md): ``"torchscript"`` (default; ``method`` "auto"
    scripts and falls back to tracing with an ``ExportWarning`` saying why),
    ``"aoti"`` (an AOTInductor ``.pt2``), ``"onnx"``, ``"executorch"`` (a ``.pte``
    lowered to ``delegate``, "xnnpack" or "none"), or ``"all"``: .pt, .pt2 and .onnx
    beside ``path``, checked against each other, returned as ``{format: path}``.
    ``optimize`` ("none", "freeze", "fast"; TorchScript) records 10 times the
    largest difference from eager measured at export as the manifest's tolerance.

    Inputs as the model takes them: positional tensors, or ``example_kwargs`` (or
    a dict) by ``forward``'s parameter names. Tensor arguments become the inputs,
    named after the parameters unless ``input_names`` (a scripted model's
    ``Optional[Tensor]`` one may be left out at run time); the other parameters keep
    the int, float, bool, str or None value export used or their default (the
    manifest's ``constants``; an ``ExportWarning`` names those left at a default).
    Outputs may be tensors nested in tuples, named tuples, lists, dicts and
    dataclasses (``ModelOutput``); the manifest names each (``hidden_states.0``).
    ``dynamic_dims`` maps an input to its dynamic dims: a list (dim 0 the shared
    ``"batch"``) or ``{dim: name}``; by default dim 0 of every input is "batch".
    ``dim_bounds`` bounds named dims, ``{"seq": (1, 512)}`` (a model's
    ``config.max_position_embeddings`` bounds dim 1 of its integer inputs): the
    runtime checks them on every call, and the torch.export formats are
    captured no wider. ``labels``, ``features`` (``manifest.FeatureSpec``) and
    ``images`` (``{input: manifest.ImageSpec}``) become typed manifest fields.

    The file is written atomically, with a payload checksum the runtime verifies
    at load, and only once the runtime that will run it has loaded the bytes and
    reproduced the golden outputs within the format's tolerance; an existing file
    is replaced only with ``overwrite=True``.

        >>> export(bert, None, "bert.pt2", format="aoti", example_kwargs={"input_ids": ids, "attention_mask": mask},
        ...        dynamic_dims={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}})
        >>> export(model, (tokens, mask), "m.pt", metadata={"labels": ["neg", "pos"]},
        ...        dynamic_dims={"tokens": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}})
    """
    fmt = _check_options(model, path, format, method, delegate, optimize, metadata)
    path = Path(path)
    if format == "all":
        return _export_all(model, example_inputs, path, overwrite, example_kwargs=example_kwargs,
                           dim_bounds=dim_bounds, method=method, input_names=input_names, output_names=output_names,
                           dynamic_dims=dynamic_dims, metadata=metadata, name=name, labels=labels, features=features,
                           images=images)
    if path.exists() and not overwrite:
        raise BadOptionError(f"path: '{path}' already exists; pass overwrite=True to replace it")
    job = _job(model, example_inputs, example_kwargs, input_names, dynamic_dims, images, path, fmt,
               method=method, optimize=optimize, delegate=delegate)
    job.bounds = _bounds(model, dim_bounds, job.dynamic, job.names, job.inputs)
    prepared = fmt.prepare(job)
    job.layout = _carried_layout(job, fmt, prepared)
    job.output_names = _names(output_names, list(job.layout.names), "output_names")
    shapes = _output_shapes(lambda t: output_tensors(prepared.run(t)), job.inputs, job.layout, job.dynamic, job.names)
    golden = _golden(job.inputs, job.layout.tensors)
    manifest = _manifest(job, fmt, prepared, shapes, name=name, metadata=metadata, labels=labels,
                         features=features, images=images)
    data = fmt.build(job, prepared, manifest, golden)
    # Checked by the runtime that will run it before anything is written:
    # export never leaves a file that its runtime refuses.
    fmt.check(job, data, manifest)
    write_bytes(path, data, overwrite=overwrite)
    return path


def _check_options(model, path, format: str, method: str, delegate: Optional[str], optimize: str,
                   metadata: Optional[Mapping[str, Any]]) -> Optional[Format]:
    """The format export writes (None for "all"), once every option is known good."""
    if method not in METHODS:
        raise BadOptionError(f"method: expected one of {METHODS}, got {method!r}")
    if format not in EXPORT_FORMATS:
        raise BadOptionError(f"format: expected one of {EXPORT_FORMATS}, got {format!r}")
    fmt = formats.get(format) if format != "all" else None
    if delegate is not None:
        takers = [f.name for f in formats.REGISTRY.values() if f.delegates]
        if fmt is None or not fmt.delegates:
            raise BadOptionError(f"delegate: applies to format {' or '.join(map(repr, takers))}, got format {format!r}")
        if delegate not in fmt.delegates:
            raise BadOptionError(f"delegate: expected one of {fmt.delegates}, got {delegate!r}")
    levels.check_level(optimize)
    if optimize != "none" and (fmt is None or not fmt.optimizes):
        takers = [f.title for f in formats.REGISTRY.values() if f.optimizes]
        raise BadOptionError(f"optimize={optimize!r} applies to {' and '.join(takers)}; format {format!r} takes "
                             "only 'none'")
    if not isinstance(model, torch.nn.Module):
        raise BadOptionError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    try:
        json.dumps(dict(metadata or {}))
    except TypeError as e:
        raise BadOptionError(f"metadata: must be JSON-serialisable ({e})") from None
    if not Path(path).parent.is_dir():
        raise BadOptionError(f"path: folder '{Path(path).parent}' does not exist")
    return fmt


def _export_all(model, example_inputs, path: Path, overwrite: bool, **options) -> dict[str, Path]:
    """Each format of ``formats.FORMATS`` beside ``path``, checked against each other."""
    targets = {f: path.with_suffix(formats.SUFFIXES[f]) for f in formats.FORMATS}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise BadOptionError(f"path: {existing} already exist; pass overwrite=True to replace them")
    written = {f: export(model, example_inputs, p, overwrite=overwrite, format=f, **options)
               for f, p in targets.items()}
    formats.cross_check(written)
    return written


def _job(model, example_inputs, example_kwargs, input_names, dynamic_dims, images, path: Path, fmt: Format,
         **options) -> Job:
    """The example bound to ``forward``, run once in eval mode (the outputs' layout
    by the runtime's rule), the inputs' names and dynamic dims."""
    call = _bind(model, example_inputs, example_kwargs)
    model.eval()
    with torch.inference_mode():
        returned = model(*call.args, **call.kwargs)
    # The runtime's rule decides what is carried, the order and the names.
    layout = load_native().describe_outputs(returned)
    names = _names(input_names, call.names, "input_names")
    unknown = set(images or {}) - set(names)
    if unknown:
        raise BadOptionError(f"images: unknown input names {sorted(unknown)}; inputs are {names}")
    return Job(model, call, names, _dynamic(dynamic_dims, names, call.tensors), layout, path, fmt.name,
               returned=returned, **options)


def _carried_layout(job: Job, fmt: Format, prepared: Prepared):
    """The outputs' layout as the artifact carries it: a list that follows the
    batch (found by running ``prepared`` at twice the batch) becomes a list per
    batch element, where the format carries those."""
    batched = [(i, d) for i, n in enumerate(job.names) for d, label in job.dynamic[n].items() if label == "batch"]
    if not batched or not job.layout.structure_json:
        return job.layout
    batch = job.inputs[batched[0][0]].shape[batched[0][1]]
    doubled = list(job.inputs)
    for i, d in batched:
        doubled[i] = torch.cat([doubled[i], doubled[i]], dim=d)
    try:
        with torch.inference_mode():
            again = prepared.run(tuple(doubled))
    except Exception:  # noqa: BLE001 - a model may refuse other batches: its lists keep their length
        return job.layout
    layout = load_native().describe_outputs(job.returned, batch=batch, at_other_batch=again, other_batch=2 * batch)
    if layout.schema >= 3 and not fmt.per_batch_lists:
        item = next(n for n in layout.names if "*" in n)
        raise BadOptionError(f"output '{item}': a list with one item per batch element is carried by TorchScript "
                             f"artifacts only, not format={fmt.name!r}; export it as 'torchscript', or with a fixed "
                             "batch (dynamic_dims without 'batch')")
    return layout if fmt.per_batch_lists else job.layout


def _golden(inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor]) -> bytes:
    """The golden examples' bytes: the inputs and every output at the example batch."""
    golden = io.BytesIO()
    torch.save({"inputs": [t.cpu().contiguous().clone() for t in inputs],
                "outputs": [o.cpu().contiguous().clone() for o in outputs]}, golden)
    return golden.getvalue()


def _manifest(job: Job, fmt: Format, prepared: Prepared, shapes, *, name, metadata, labels, features,
              images) -> Manifest:
    """The contract, checked against the runtime's rules (dtypes, names, metadata)."""
    out_shapes, data_dependent = shapes
    outputs, specs = tuple(job.layout.tensors), job.layout.specs
    dynamic = job.dynamic
    manifest = Manifest(
        name=name or job.model_name,
        inputs=[TensorSpec(n, dtype_name(t.dtype), tuple(dynamic[n].get(d, s) for d, s in enumerate(t.shape)),
                           optional=n in prepared.optional, image=(images or {}).get(n))
                for n, t in zip(job.names, job.inputs)],
        outputs=[TensorSpec(n, dtype_name(outputs[specs.index(k)].dtype), s, data_dependent=dd)
                 for k, (n, s, dd) in enumerate(zip(job.output_names, out_shapes, data_dependent))],
        dims=job.bounds,
        constants=job.call.constants,
        structure=json.loads(job.layout.structure_json) if job.layout.structure_json else None,
        schema=job.layout.schema,  # 3 only when the structure needs it: older runtimes read the rest
        torchport_version=__version__,
        torch_version=torch.__version__,
        export_method=prepared.export_method,
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        metadata={**dict(metadata or {}), **prepared.metadata},
        golden=True,
        format=fmt.name,
        labels=[str(v) for v in labels or []],
        features=[f if isinstance(f, FeatureSpec) else FeatureSpec(f["name"], f.get("type", "numeric"),
                                                                   tuple(f.get("vocabulary", ())))
                  for f in features or []],
        optimize=job.optimize if fmt.optimizes else "",
        tolerance=prepared.tolerance,
    )
    try:
        manifest.validated(f"export of '{job.path}': manifest")
    except BadArtifactError as e:
        raise ExportError(f"the runtime would refuse this artifact: {e}") from None
    return manifest
