"""The artifact formats besides TorchScript: AOTInductor ``.pt2`` packages and ONNX models.

``torchport.export(..., format=...)`` calls these; each writes the same manifest
and golden examples as a TorchScript artifact, in its own container:

* ``aoti``: ``torch.export.export`` with the manifest's dynamic dimensions as
  ``torch.export.Dim``s, then ``torch._inductor.aoti_compile_and_package`` with
  CPU freezing on. torchport's records go under the package's ``torchport/``
  (which AOTInductor's loaders ignore; torch's Python loader would read
  ``extra/`` as text), with a payload checksum like the TorchScript one. The C++
  runtime loads it like any artifact; it tells the two apart by content.
* ``executorch``: ``torch.export.export`` with the dynamic dimensions as
  ``Dim``s bounded by ``EXECUTORCH_DIM_MAX`` (ExecuTorch plans memory for the
  largest shape), lowered with ``to_edge_transform_and_lower`` (XNNPACK by
  default, ``delegate="none"`` for ExecuTorch's portable kernels only) and
  ``.to_executorch()``. The ``.pte`` is followed by torchport's manifest, golden
  examples and a footer in the same file (docs/artifact.md); ExecuTorch's
  loaders ignore them. The C++ runtime runs it with ExecuTorch's runtime.
* ``onnx``: ``torch.onnx.export(dynamo=True)``; the manifest and golden
  examples go into the model's ``metadata_props`` (``torchport/manifest.json``,
  and ``torchport/golden.pt`` base64-encoded). ONNX Runtime runs it from Python
  (``pip install torchport[onnx]``), and the C++ runtime runs it through its
  ONNX Runtime backend (the same library, loaded at run time).

The tolerance each format promises against eager (golden) outputs is stated
here, once, and written into each manifest; docs/artifact.md gives the
measurements behind it.

    >>> torchport.export(model, x, "m.pt2", format="aoti")
    >>> torchport.export(model, x, "m.pt", format="all")   # m.pt, m.pt2, m.onnx
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import struct
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from torchport.errors import BadArtifactError, BadOptionError, ExportError, NativeUnavailableError
from torchport.manifest import Manifest, payload_checksum
from torchport.native import load_native

# torchport's record names ("torchport/manifest.json", "torchport/golden.pt"),
# as the runtime defines them.
MANIFEST_FILE: str = load_native().MANIFEST_FILE
GOLDEN_FILE: str = load_native().GOLDEN_FILE

#: the formats ``export`` writes; "all" writes each of them side by side
FORMATS = ("torchscript", "aoti", "onnx")
SUFFIXES = {"torchscript": ".pt", "aoti": ".pt2", "onnx": ".onnx", "executorch": ".pte"}
EXPORT_METHODS = {"aoti": "torch.export", "onnx": "torch.onnx.export", "executorch": "torch.export"}

#: How far each format's outputs may be from eager's (the golden outputs), as
#: torch.allclose's atol and rtol. TorchScript is bit-exact (no entry). Measured
#: on the zoo's families and a ResNet-18 (benchmarks/formats.py, figures in
#: docs/artifact.md), the largest absolute difference from eager was 3.0e-7
#: (.pt2) and 3.6e-7 (ONNX Runtime), both on the transformer; atol is about 30x
#: that, and rtol 1e-4 leaves room for trained weights whose outputs are
#: larger than these randomly initialised ones.
TOLERANCES: dict[str, dict[str, float]] = {
    "aoti": {"atol": 1e-5, "rtol": 1e-4},
    "onnx": {"atol": 1e-5, "rtol": 1e-4},
}

#: Inductor settings for the package: weights frozen into the compiled graph (CPU).
INDUCTOR_CONFIGS = {"freezing": True}
#: Where the manifest's metadata records the compile: seconds, torch, configs.
COMPILE_KEY = "torchport.compile"


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


def tolerance(fmt: str, delegate: Optional[str] = None) -> Optional[dict[str, float]]:
    """The tolerance ``fmt`` states in its manifests; None for bit-exact formats."""
    tol = EXECUTORCH_TOLERANCES[delegate or DELEGATES[0]] if fmt == "executorch" else TOLERANCES.get(fmt)
    return dict(tol) if tol else None


# ----------------------------------------------------------------- torch.export


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


# ------------------------------------------------------------------- AOTInductor


def _repack(package: bytes, extra: dict[str, bytes]) -> bytes:
    """The package's records plus ``extra`` (by record name), in a new PT2 archive."""
    from torch.export.pt2_archive._package import PT2ArchiveWriter

    reader = torch._C.PyTorchFileReader(io.BytesIO(package))
    out = io.BytesIO()
    with PT2ArchiveWriter(out) as writer:
        for name in sorted(reader.get_all_records()):
            # The writer adds its own version, byte order and serialization id.
            if name.startswith(".data/") or writer.has_record(name):
                continue
            writer.write_bytes(name, reader.get_record(name))
        for name, data in extra.items():
            writer.write_bytes(name, data)
    return out.getvalue()


def compile_aoti(model: torch.nn.Module, inputs: tuple, dynamic: dict, names: list[str]) -> tuple[bytes, float]:
    """(package bytes, compile seconds): torch.export, then AOTInductor with freezing."""
    program = capture(model, inputs, dynamic, names)
    with tempfile.TemporaryDirectory(prefix="torchport-aoti-") as tmp:
        start = time.perf_counter()
        try:
            package = torch._inductor.aoti_compile_and_package(
                program, package_path=os.path.join(tmp, "model.pt2"), inductor_configs=dict(INDUCTOR_CONFIGS)
            )
        except Exception as e:  # noqa: BLE001 - Inductor raises many error types
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise ExportError(f"AOTInductor could not compile {type(model).__name__}: {first}") from e
        seconds = time.perf_counter() - start
        return Path(package).read_bytes(), seconds


def package_aoti(package: bytes, manifest: Manifest, golden: bytes) -> bytes:
    """The package with torchport's records inside and the payload checksum in the manifest."""
    # The checksum covers the records and the manifest without its checksum
    # field (the runtime's rule), so it is taken from a first packing whose
    # manifest has none yet; the records do not change between packings.
    manifest.checksum = ""
    manifest.checksum = payload_checksum(_repack(package, {MANIFEST_FILE: manifest.to_json().encode(),
                                                           GOLDEN_FILE: golden}))
    data = _repack(package, {MANIFEST_FILE: manifest.to_json().encode(), GOLDEN_FILE: golden})
    if payload_checksum(data) != manifest.checksum:
        raise ExportError("the .pt2 package's records changed between two packings; cannot checksum the payload")
    return data


# -------------------------------------------------------------------- ExecuTorch

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


def compile_executorch(model: torch.nn.Module, inputs: tuple, dynamic: dict, names: list[str],
                       delegate: str) -> tuple[bytes, float]:
    """(.pte bytes, lowering seconds): torch.export with bounded dims (``split``
    as slices, see ``_SPLIT_AS_SLICES``), then ExecuTorch's edge lowering (to
    ``delegate``) and ``.to_executorch()``."""
    exir = _executorch()
    program = capture(model, inputs, dynamic, names, max=EXECUTORCH_DIM_MAX).run_decompositions(_SPLIT_AS_SLICES)
    long = [f"aten.{op}: {steps} steps" for op, steps in _recurrent_steps(program) if steps > RNN_UNROLL_WARN_STEPS]
    if long:
        from torchport.errors import ExportWarning

        warnings.warn(
            f"ExecuTorch has no LSTM/GRU kernel: lowering {type(model).__name__} unrolls every time step of every "
            f"layer ({'; '.join(long)}; more than {RNN_UNROLL_WARN_STEPS}) into separate graph nodes, which takes "
            "minutes per model (docs/artifact.md); a shorter sequence or fewer layers lowers faster, or export "
            "format 'torchscript' or 'aoti' keeps the recurrence as one op", ExportWarning, stacklevel=4)
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
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise ExportError(
            f"ExecuTorch could not lower {type(model).__name__} (delegate {delegate}): {first}; "
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


def custom_ops(module) -> list[str]:
    """Operators outside aten:: and prim:: that a TorchScript module's graph calls
    ("tp_test::keep_above"), inside if/loop blocks too: the one walk, used by export
    (the manifest's custom ops) and the localiser (per submodule)."""
    ops: set[str] = set()

    def visit(block) -> None:
        for node in block.nodes():
            kind = node.kind()
            if "::" in kind and kind.split("::")[0] not in ("aten", "prim"):
                ops.add(kind)
            for b in node.blocks():
                visit(b)

    try:
        visit(module.inlined_graph)
    except Exception:  # noqa: BLE001 - a graph we cannot walk records nothing
        return []
    return sorted(ops)


# -------------------------------------------------------------------------- ONNX

from torchport._onnx_records import (  # noqa: E402 - the readers live in the contract layer
    _ONNX_MAX_BYTES, ONNX_GOLDEN_KEY, ONNX_MANIFEST_KEY, _onnx, is_onnx, read_onnx_record,
)


def export_onnx(
    model: torch.nn.Module, inputs: tuple, dynamic: dict, names: list[str], out_names: list[str],
    manifest: Manifest, golden: bytes,
) -> bytes:
    """The ONNX model (dynamo exporter) with the manifest and golden examples in its metadata_props."""
    onnx = _onnx()
    with tempfile.TemporaryDirectory(prefix="torchport-onnx-") as tmp:
        try:
            # The exporter prints its progress; export's caller asked for a file, not a log.
            with contextlib.redirect_stdout(io.StringIO()):
                program = torch.onnx.export(
                    model, inputs, dynamo=True, dynamic_shapes=dynamic_shapes(dynamic, names),
                    input_names=names, output_names=out_names, verbose=False,
                )
            program.save(os.path.join(tmp, "model.onnx"))
        except Exception as e:  # noqa: BLE001 - the exporter raises many error types
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise ExportError(f"torch.onnx.export could not export {type(model).__name__}: {first}") from e
        proto = onnx.load(os.path.join(tmp, "model.onnx"))
    for key in (ONNX_MANIFEST_KEY, ONNX_GOLDEN_KEY):
        for i in reversed(range(len(proto.metadata_props))):
            if proto.metadata_props[i].key == key:
                del proto.metadata_props[i]
    proto.metadata_props.add(key=ONNX_MANIFEST_KEY, value=manifest.to_json())
    proto.metadata_props.add(key=ONNX_GOLDEN_KEY, value=base64.b64encode(golden).decode("ascii"))
    return proto.SerializeToString()


def onnxruntime_session(path: Any, threads: int = 1):
    """An ONNX Runtime CPU session on ``path`` (a file or bytes), ``threads`` intra-op threads."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise NativeUnavailableError(f"onnxruntime is not installed ({e}): pip install 'torchport[onnx]'") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path), options,
                                providers=["CPUExecutionProvider"])


def run_onnxruntime(session, inputs) -> tuple[torch.Tensor, ...]:
    """Runs a session on tensors in input order; outputs as tensors."""
    feed = {i.name: t.detach().cpu().contiguous().numpy() for i, t in zip(session.get_inputs(), inputs)}
    return tuple(torch.from_numpy(o) for o in session.run(None, feed))


# ------------------------------------------------------------ checks at export


def check_outputs(what: str, expected, got, tol: Optional[dict[str, float]]) -> None:
    """ExportError unless ``got`` matches ``expected`` within ``tol`` (exactly without one)."""
    from torchport.comparison import compare

    atol, rtol = (tol["atol"], tol["rtol"]) if tol else (0.0, 0.0)
    names = [f"output {i}" for i in range(len(expected))]
    bad = [r for r in compare(what, names, expected, got, atol, rtol) if not r.ok]
    if bad:
        r = bad[0]
        raise ExportError(
            f"{what} does not reproduce the eager outputs: {r.output} max abs diff {r.max_abs_diff:.3g}, "
            f"max rel diff {r.max_rel_diff:.3g} (tolerance atol={atol:g}, rtol={rtol:g}){': ' + r.error if r.error else ''}"
        )


def runtime_check(fmt: str, data: bytes, where: str, tol: Optional[dict[str, float]]) -> None:
    """The check an exported file's bytes pass before anything is written: loaded
    by the runtime that will run it, and its golden examples reproduced within
    ``tol``. Export never writes a file its runtime refuses."""
    if fmt == "onnx":
        from torchport.manifest import Manifest

        proto = _onnx().load_from_string(data)
        props = {p.key: p.value for p in proto.metadata_props}
        Manifest.from_json(props[ONNX_MANIFEST_KEY], f"{where} torchport/manifest.json")
        inputs, outputs = load_native().read_golden_bytes(base64.b64decode(props[ONNX_GOLDEN_KEY]), where)
        check_outputs("ONNX Runtime", outputs, run_onnxruntime(onnxruntime_session(data), inputs), tol)
        return
    try:
        native = load_native().load_from_memory(data, where)
    except (BadArtifactError, BadOptionError) as e:
        raise ExportError(f"the runtime refuses the exported {fmt} model, so nothing was written: {e}") from None
    inputs, outputs = native.golden()
    check_outputs(f"the torchport runtime ({fmt})", outputs, native.run(inputs), tol)


#: the most input bytes the export check of a .pte's largest planned size feeds
#: (past it the largest size is not run, and export warns); a guess at what
#: export can afford on a small machine, not a measured figure
EXTREMES_MAX_BYTES = 256 << 20


def _resized(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """``t`` with ``size`` entries along ``dim``: its first ones, repeated when more."""
    reps = -(-size // t.shape[dim])
    return torch.cat([t] * reps, dim).narrow(dim, 0, size).contiguous() if reps > 1 else t.narrow(dim, 0, size).contiguous()


def executorch_extremes_check(model: torch.nn.Module, data: bytes, where: str, inputs: tuple, dynamic: dict,
                              names: list[str], bounds: list[list[int]], tol: Optional[dict[str, float]]) -> list[str]:
    """The .pte run by the torchport runtime at each dynamic dim's extremes (1 and
    the size ExecuTorch planned memory for), one dim (or set of dims sharing a
    name) at a time, against eager within ``tol``: a file that works only at the
    example's size is refused (ExportError). Returns the sizes checked."""
    from torchport.errors import TorchportError
    from torchport.errors import ExportWarning

    groups: dict[Any, list[tuple[int, int]]] = {}
    for i, n in enumerate(names):
        for d, label in dynamic.get(n, {}).items():
            groups.setdefault(label if label is not None else (n, d), []).append((i, d))
    native = load_native().load_from_memory(data, where)
    checked = []
    for label, dims in groups.items():
        upper = min(bounds[i][d] for i, d in dims)
        what = ", ".join(f"input '{names[i]}' dim {d}" for i, d in dims)
        for size in sorted({1, upper} - {inputs[dims[0][0]].shape[dims[0][1]]}):
            xs = list(inputs)
            for i, d in dims:
                xs[i] = _resized(xs[i], d, size)
            if size > 1 and sum(x.numel() * x.element_size() for x in xs if isinstance(x, torch.Tensor)) > EXTREMES_MAX_BYTES:
                warnings.warn(f"{where}: the .pte was not run at {what} = {size} (the size ExecuTorch planned for): "
                              f"its inputs would exceed {EXTREMES_MAX_BYTES >> 20} MiB", ExportWarning, stacklevel=4)
                continue
            at = f"{what} = {size} ({'the smallest' if size == 1 else 'the largest ExecuTorch planned memory for'})"
            with torch.inference_mode():
                expected = model(*xs)
            expected = tuple(expected) if isinstance(expected, (tuple, list)) else (expected,)
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


def cross_check(paths: dict[str, Path]) -> None:
    """Every format's outputs on the golden inputs against every other's, within
    the looser of the two tolerances (both add up from eager)."""
    from torchport.manifest import read_golden
    from torchport.native import NativeModel

    inputs, _ = read_golden(next(iter(paths.values())))
    results = {}
    for fmt, path in paths.items():
        if fmt == "onnx":
            results[fmt] = run_onnxruntime(onnxruntime_session(path), inputs)
        else:
            results[fmt] = NativeModel(path, concurrency=1).run(*inputs)
    done = list(results)
    for i, a in enumerate(done):
        for b in done[i + 1:]:
            ta, tb = tolerance(a) or {"atol": 0.0, "rtol": 0.0}, tolerance(b) or {"atol": 0.0, "rtol": 0.0}
            tol = {k: ta[k] + tb[k] for k in ("atol", "rtol")}
            check_outputs(f"{b} against {a}", results[a], results[b], tol if any(tol.values()) else None)
