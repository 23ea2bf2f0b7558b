"""``format="executorch"``: ``torch.export.export`` with the dynamic dimensions as
``Dim``s bounded by ``EXECUTORCH_DIM_MAX`` (ExecuTorch plans memory for the
largest shape), lowered with ``to_edge_transform_and_lower`` (XNNPACK by
default, ``delegate="none"`` for ExecuTorch's portable kernels only) and
``.to_executorch()``. The ``.pte`` is followed by torchport's manifest, golden
examples and a footer in the same file (docs/artifact.md); ExecuTorch's loaders
ignore them. The C++ runtime runs it with ExecuTorch's runtime.

    >>> torchport.export(model, x, "m.pte", format="executorch", delegate="xnnpack")
"""

from __future__ import annotations

import struct
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import torch

from torchport.errors import BadOptionError, ExportError, NativeUnavailableError, TorchportError
from torchport.formats._capture import capture, prepare_exported
from torchport.formats._core import (
    COMPILE_KEY, Format, Job, Prepared, Tolerance, check_outputs, first_line, load_checked, native_check,
    output_tensors, run_native_file, warn_user,
)
from torchport.manifest import Manifest, payload_checksum

#: ExecuTorch's tolerance per delegate. Measured (benchmarks/formats.py, figures in
#: docs/artifact.md) on the zoo's mlp and cnn: at most 6.0e-8 from eager with
#: either delegate, and the transformer (benchmarks/executorch_sequences.py) at
#: most 2.8e-7, so the other formats' atol is kept (over 30x that).
EXECUTORCH_TOLERANCES: dict[str, dict[str, float]] = {
    "xnnpack": {"atol": 1e-5, "rtol": 1e-4},
    "none": {"atol": 1e-5, "rtol": 1e-4},
}
#: the delegates format="executorch" lowers to; "none" keeps ExecuTorch's own kernels
DELEGATES = ("xnnpack", "none")
#: the upper bound of every dynamic dim in a .pte (ExecuTorch plans memory for it)
EXECUTORCH_DIM_MAX = 1024


def tolerance(delegate: Optional[str] = None) -> Tolerance:
    return dict(EXECUTORCH_TOLERANCES[delegate or DELEGATES[0]])


#: the footer after torchport's records in a .pte (cpp/src/pte.cpp reads it)
PTE_TAIL_MAGIC = b"TPORTPTE"
PTE_TAIL_VERSION = 1


def _executorch():
    try:
        from executorch import exir
    except ImportError as e:
        raise BadOptionError(
            f"format 'executorch' needs the executorch package ({e}): pip install 'torchport[executorch]'"
        ) from None
    return exir


def _split_as_slices(x, split_size, dim=0):
    n = x.shape[dim]
    if not isinstance(n, int):  # a dynamic split dim stays a split
        return NotImplemented
    return tuple(torch.ops.aten.slice.Tensor(x, dim, i, min(i + split_size, n)) for i in range(0, n, split_size))


def _split_sizes_as_slices(x, sizes, dim=0):
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return tuple(torch.ops.aten.slice.Tensor(x, dim, a, a + s) for a, s in zip(starts, sizes))


#: ``split`` rewritten as slices before lowering: executorch 1.5.1's edge lowering
#: (to_edge) specialises every dynamic dim of a graph with a ``split`` to the
#: example's size (its range becomes [example, example]), so the transformer's
#: ``qkv(x).split(C, dim=2)`` planned the batch for the example only and other
#: batches failed inside ExecuTorch with error 0x10 (NotSupported).
_SPLIT_AS_SLICES = {torch.ops.aten.split.Tensor: _split_as_slices,
                    torch.ops.aten.split_with_sizes.default: _split_sizes_as_slices}


#: recurrent steps (time steps x layers x directions) past which lowering warns:
#: ExecuTorch has no LSTM/GRU kernel, so its edge lowering unrolls aten.lstm and
#: aten.gru into about 21 graph nodes per step, and lowering time grows with them
#: (docs/artifact.md has the figures measured). 32 is a chosen line, about a
#: minute or more of lowering at the measured rate, not a measured limit.
RNN_UNROLL_WARN_STEPS = 32


def _recurrent_steps(program) -> list[tuple[str, int]]:
    """(op, steps) for each aten.lstm/aten.gru in ``program``: the time steps
    (static) times layers times directions that lowering unrolls."""
    found = []
    for node in program.graph.nodes:
        name = getattr(node.target, "__name__", str(node.target))
        if node.op != "call_function" or name.split(".")[0] not in ("lstm", "gru") or len(node.args) < 9:
            continue
        val = node.args[0].meta.get("val") if hasattr(node.args[0], "meta") else None
        num_layers, bidirectional, batch_first = node.args[4], node.args[7], node.args[8]
        if val is None or not isinstance(num_layers, int):
            continue
        time_steps = val.shape[1 if batch_first and val.dim() == 3 else 0]
        if isinstance(time_steps, int):
            found.append((name.split(".")[0], time_steps * num_layers * (2 if bidirectional else 1)))
    return found


def compile_executorch(job: Job, delegate: str) -> tuple[bytes, float]:
    """(.pte bytes, lowering seconds): torch.export with bounded dims (``split``
    as slices, see ``_SPLIT_AS_SLICES``), then ExecuTorch's edge lowering (to
    ``delegate``) and ``.to_executorch()``."""
    exir = _executorch()
    model = job.model
    program = capture(job, max=EXECUTORCH_DIM_MAX).run_decompositions(_SPLIT_AS_SLICES)
    long = [f"aten.{op}: {steps} steps" for op, steps in _recurrent_steps(program) if steps > RNN_UNROLL_WARN_STEPS]
    if long:
        warn_user(
            f"ExecuTorch has no LSTM/GRU kernel: lowering {type(model).__name__} unrolls every time step of every "
            f"layer ({'; '.join(long)}; more than {RNN_UNROLL_WARN_STEPS}) into separate graph nodes, which takes "
            "minutes per model (docs/artifact.md); a shorter sequence or fewer layers lowers faster, or export "
            "format 'torchscript' or 'aoti' keeps the recurrence as one op")
    partitioners = []
    if delegate == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioners.append(XnnpackPartitioner())
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # pytree's LeafSpec deprecation, raised inside ExecuTorch's own passes.
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            edge = exir.to_edge_transform_and_lower(program, partitioner=partitioners)
            data = bytes(edge.to_executorch().buffer)
    except Exception as e:  # noqa: BLE001 - lowering raises many error types
        raise ExportError(
            f"ExecuTorch could not lower {type(model).__name__} (delegate {delegate}): {first_line(e)}; "
            "an operator ExecuTorch has no kernel for, or a dtype it cannot carry, needs another format"
        ) from e
    return data, time.perf_counter() - start


def pte_input_bounds(program: bytes) -> list[list[int]]:
    """The shape ExecuTorch planned memory for, per input of ``forward``: each
    dynamic dim's upper bound (the C++ runtime refuses larger inputs)."""
    from executorch.runtime import Runtime

    meta = Runtime.get().load_program(program).metadata("forward")
    return [list(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]


def pack_pte(program: bytes, manifest_json: bytes, golden: bytes) -> bytes:
    """program + manifest + golden + footer (magic, version, three sizes), little-endian."""
    footer = PTE_TAIL_MAGIC + struct.pack("<II", PTE_TAIL_VERSION, 0) + struct.pack(
        "<QQQ", len(program), len(manifest_json), len(golden))
    return program + manifest_json + golden + footer


def package_executorch(program: bytes, manifest: Manifest, golden: bytes) -> bytes:
    """The .pte with torchport's tail and the payload checksum in the manifest."""
    manifest.checksum = ""  # covered without its checksum field (the runtime's rule)
    manifest.checksum = payload_checksum(pack_pte(program, manifest.to_json().encode(), golden))
    return pack_pte(program, manifest.to_json().encode(), golden)


def run_executorch_python(path: Any, inputs) -> tuple[torch.Tensor, ...]:
    """The .pte's ``forward`` through ExecuTorch's own Python runtime (executorch.runtime)."""
    try:
        from executorch.runtime import Runtime
    except ImportError as e:
        raise NativeUnavailableError(f"executorch is not installed ({e}): pip install 'torchport[executorch]'") from None
    program = Runtime.get().load_program(Path(path) if not isinstance(path, bytes) else path)
    outputs = program.load_method("forward").execute([t.detach().cpu().contiguous() for t in inputs])
    return tuple(torch.as_tensor(o).clone() for o in outputs)


#: the most input bytes the export check of a .pte's largest planned size feeds
#: (past it the largest size is not run, and export warns); a guess at what
#: export can afford on a small machine, not a measured figure
EXTREMES_MAX_BYTES = 256 << 20


def _resized(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """``t`` with ``size`` entries along ``dim``: its first ones, repeated when more."""
    reps = -(-size // t.shape[dim])
    return torch.cat([t] * reps, dim).narrow(dim, 0, size).contiguous() if reps > 1 else t.narrow(dim, 0, size).contiguous()


def executorch_extremes_check(job: Job, data: bytes, bounds: list[list[int]], tol: Tolerance) -> list[str]:
    """The .pte run by the torchport runtime at each dynamic dim's extremes (1 and
    the size ExecuTorch planned memory for), one dim (or set of dims sharing a
    name) at a time, against eager within ``tol``: a file that works only at the
    example's size is refused (ExportError). Returns the sizes checked."""
    inputs, dynamic, names, where = job.inputs, job.dynamic, job.names, str(job.path)
    groups: dict[Any, list[tuple[int, int]]] = {}
    for i, n in enumerate(names):
        for d, label in dynamic.get(n, {}).items():
            groups.setdefault(label if label is not None else (n, d), []).append((i, d))
    native = load_checked("executorch", data, where)
    checked = []
    for label, dims in groups.items():
        upper = min(bounds[i][d] for i, d in dims)
        what = ", ".join(f"input '{names[i]}' dim {d}" for i, d in dims)
        for size in sorted({1, upper} - {inputs[dims[0][0]].shape[dims[0][1]]}):
            xs = list(inputs)
            for i, d in dims:
                xs[i] = _resized(xs[i], d, size)
            if size > 1 and sum(x.numel() * x.element_size() for x in xs if isinstance(x, torch.Tensor)) > EXTREMES_MAX_BYTES:
                warn_user(f"{where}: the .pte was not run at {what} = {size} (the size ExecuTorch planned for): "
                          f"its inputs would exceed {EXTREMES_MAX_BYTES >> 20} MiB")
                continue
            at = f"{what} = {size} ({'the smallest' if size == 1 else 'the largest ExecuTorch planned memory for'})"
            with torch.inference_mode():
                expected = output_tensors(job.run_model(xs))  # the runtime's flattening (a ModelOutput too)
            try:
                got = native.run(xs)
            except TorchportError as e:
                raise ExportError(f"the exported .pte fails at {at}, so nothing was written: {e}") from None
            try:
                check_outputs(f"the torchport runtime (executorch) at {at}", expected, got, tol)
            except ExportError as e:
                raise ExportError(f"{e}; nothing was written") from None
            checked.append(f"{what}={size}")
    return checked


def _prepare(job: Job) -> Prepared:
    return prepare_exported(job, "torch.export", tolerance(job.delegate))


def _build(job: Job, prepared: Prepared, manifest: Manifest, golden: bytes) -> bytes:
    """Lowered, with the planned input bounds in the manifest (a warning names the
    dims ExecuTorch planned smaller than asked: larger inputs are refused)."""
    delegate = job.delegate or DELEGATES[0]
    program, seconds = compile_executorch(job, delegate)
    import executorch.version  # after compile_executorch, which names the extra when it is missing
    bounds = pte_input_bounds(program)
    manifest.metadata[COMPILE_KEY] = {
        "seconds": round(seconds, 2), "torch": torch.__version__, "executorch": executorch.version.__version__,
        "delegate": delegate, "dim_max": EXECUTORCH_DIM_MAX, "input_bounds": bounds,
    }
    low = [f"input '{n}' dim {d}: at most {b[d]}, {job.asked_bound(n, d, EXECUTORCH_DIM_MAX)} asked" for n, b in
           zip(job.names, bounds) for d in job.dynamic.get(n, {})
           if d < len(b) and b[d] < job.asked_bound(n, d, EXECUTORCH_DIM_MAX)]
    if low:
        warn_user(f"ExecuTorch ({delegate}) planned memory for smaller dynamic dims than asked "
                  f"({'; '.join(low)}); larger inputs are refused at run time (BadInputError)")
    return package_executorch(program, manifest, golden)


def _check(job: Job, data: bytes, manifest: Manifest) -> None:
    """The golden examples, then each dynamic dim at 1 and at the size planned for."""
    native_check("executorch")(job, data, manifest)
    bounds = manifest.metadata[COMPILE_KEY]["input_bounds"]
    executorch_extremes_check(job, data, bounds, manifest.tolerance)


FORMAT = Format(
    name="executorch", title="ExecuTorch .pte", suffix=".pte",
    prepare=_prepare, build=_build, check=_check, run_file=run_native_file, tolerance=tolerance,
    delegates=DELEGATES, in_all=False,
)
