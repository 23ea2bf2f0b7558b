"""``format="torchscript"`` (the default): ``torch.jit.script``, falling back to
``torch.jit.trace`` with an ``ExportWarning`` saying why (``method="auto"``), or
either one alone; optionally frozen and optimised (``optimize=``, see
torchport.optimize). torchport's records go in the archive's ``extra/`` files
beside the model, with a payload checksum the runtime verifies at load. The
only format that carries keyword inputs, non-tensor arguments, optional inputs
and lists with one item per batch element.

    >>> torchport.export(model, x, "m.pt")
"""

from __future__ import annotations

import io
import json

import torch

from torchport import optimize as levels
from torchport._warnings import jit as _jit
from torchport.errors import BadOptionError, ExportError
from torchport.formats._core import (
    GOLDEN_FILE, MANIFEST_FILE, Call, Format, Job, Prepared, load_checked, output_tensors, run_native_file, warn_user,
)
from torchport.manifest import Manifest, payload_checksum

#: metadata key of the operators outside aten::/prim:: the exported graph calls
CUSTOM_OPS_KEY = "torchport.custom_ops"
METHODS = ("auto", "script", "trace")


def _reason(e: BaseException) -> str:
    """The whole message of a failure (TorchScript puts the failing construct
    and its file and line after the first line), without blank lines."""
    text = "\n".join(line for line in str(e).strip().splitlines() if line.strip())
    return text or type(e).__name__


def compile_module(model: torch.nn.Module, call: Call, method: str, strict: bool):
    """(the scripted or traced module, "script" or "trace"), as ``method`` asks."""
    def trace(script_failure: Optional[str] = None):
        if call.changed:
            why = (f"forward() arguments {call.changed} differ from their defaults, and a traced model cannot "
                   "carry non-tensor arguments (scripting can)")
            raise ExportError(why if script_failure is None else f"torch.jit.script failed:\n{script_failure}\n"
                              f"and tracing cannot take over: {why}")
        try:
            if call.by_keyword:
                return _jit(torch.jit.trace, model, example_kwarg_inputs=dict(zip(call.names, call.tensors)),
                            strict=strict), "trace"
            return _jit(torch.jit.trace, model, call.tensors, strict=strict), "trace"
        except Exception as e:  # noqa: BLE001 - tracing fails with many error types
            if script_failure is None:
                raise ExportError(f"torch.jit.trace failed: {_reason(e)}") from e
            raise ExportError(
                f"both compilers failed.\ntorch.jit.script failed:\n{script_failure}\n"
                f"torch.jit.trace failed:\n{_reason(e)}"
            ) from e

    if method == "trace":
        return trace()
    try:
        return _jit(torch.jit.script, model), "script"
    except Exception as e:  # noqa: BLE001 - scripting fails with many error types
        if method == "script":
            raise ExportError(
                f"torch.jit.script failed (method='auto' would fall back to tracing):\n{_reason(e)}"
            ) from e
        warn_user(
            f"torch.jit.script failed; exporting with torch.jit.trace instead, which records the path taken on "
            f"the example inputs: data-dependent control flow is frozen. The reason:\n{_reason(e)}"
        )
        return trace(_reason(e))


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


def _archive(module, extra_files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    _jit(torch.jit.save, module, buf, _extra_files=extra_files)
    return buf.getvalue()


def _caller(job: Job, module, used: str):
    """Runs ``module`` on tensors in input order as export called forward: by name,
    with the non-tensor arguments a scripted module takes (a traced one takes
    only its tensors: tracing refuses changed ones)."""
    call = job.call
    if not call.by_keyword:
        return lambda tensors: module(*tensors)
    constants = call.constants if used == "script" else call.changed
    return lambda tensors: module(**dict(zip(call.names, tensors)), **constants)


def _prepare(job: Job) -> Prepared:
    """The compiled module, the inputs its schema makes optional, the custom
    operators it calls, and the optimisation level measured against eager."""
    call = job.call
    if job.optimize != "none" and (call.by_keyword or call.changed):
        raise BadOptionError(f"optimize={job.optimize!r}: levels apply to models called with positional tensors; "
                             "keyword inputs and non-default non-tensor arguments take optimize='none'")
    module, used = compile_module(job.model, call, job.method, strict=not job.layout.structure_json)
    optional: set[str] = set()
    if used == "script":
        schema = {a.name: str(a.type) for a in module.forward.schema.arguments}
        optional = {n for n, p in zip(job.names, call.names) if schema.get(p, "").startswith("Optional[")}
    prepared = Prepared(run=_caller(job, module, used), export_method=used, optional=optional)
    ops = custom_ops(module)
    if ops:
        prepared.metadata[CUSTOM_OPS_KEY] = ops
    # Shapes come from the general graph (prepared.run); the level is measured against eager.
    prepared.state = levels.apply(module, job.optimize)
    if job.optimize != "none":
        batched = [job.dynamic[n].get(0) == "batch" for n in job.names]
        measured = levels.measure(levels.for_inference(prepared.state, job.optimize), job.model, call.tensors,
                                  batched, job.optimize, output_tensors)
        prepared.metadata[levels.METADATA_KEY] = {"level": job.optimize, "max_abs_diff": measured["max_abs_diff"],
                                                  "safety_factor": measured["safety_factor"]}
        prepared.tolerance = {"atol": measured["atol"], "rtol": 0.0}
    return prepared


def _build(job: Job, prepared: Prepared, manifest: Manifest, golden: bytes) -> bytes:
    """The saved module with torchport's records, the payload checksum in the manifest."""
    # The checksum covers the records and the manifest without its checksum
    # field (the runtime's rule), so it is taken from a first save whose
    # manifest has none yet; the records do not change between saves.
    manifest.checksum = ""
    manifest.checksum = payload_checksum(_archive(
        prepared.state, {MANIFEST_FILE: manifest.to_json().encode(), GOLDEN_FILE: golden}))
    data = _archive(prepared.state, {MANIFEST_FILE: manifest.to_json().encode(), GOLDEN_FILE: golden})
    if payload_checksum(data) != manifest.checksum:
        raise ExportError("torch.jit.save wrote different model records on two saves; cannot checksum the payload")
    return data


def _check(job: Job, data: bytes, manifest: Manifest) -> None:
    """Loaded by the runtime's own reader; an optimised module must reproduce eager
    within the tolerance measured at export."""
    loaded = load_checked("torchscript", data, str(job.path))
    if job.optimize != "none":
        check = json.loads(loaded.selfcheck())
        if not check["ok"]:
            raise ExportError(f"optimize={job.optimize!r}: the runtime's outputs are not within the measured "
                              f"tolerance of eager's, so nothing was written: {check}")


FORMAT = Format(
    name="torchscript", title="TorchScript", suffix=".pt",
    prepare=_prepare, build=_build, check=_check, run_file=run_native_file, tolerance=lambda delegate=None: None,
    optimizes=True, per_batch_lists=True,
)
