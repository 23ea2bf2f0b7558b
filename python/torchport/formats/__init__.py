"""The artifact formats, one module each, behind one ``Format`` record.

Each module (``torchscript``, ``aoti``, ``onnx``, ``executorch``) holds its
format's suffix, tolerance, compile, package and check, and ends in a
``FORMAT``; ``REGISTRY`` below lists them, and ``torchport.export`` is a driver
over it. The C++ runtime has one backend per format (cpp/src/backends/) and
tells them apart by content. A new format is one module here, one line in
``REGISTRY``, and one C++ backend.

Every format writes the same manifest and golden examples, in its own
container, and states in each manifest how far its outputs may be from eager's
(``Format.tolerance``; docs/artifact.md gives the measurements behind it).

    >>> torchport.export(model, x, "m.pt2", format="aoti")
    >>> torchport.export(model, x, "m.pt", format="all")   # m.pt, m.pt2, m.onnx
    >>> formats.get("onnx").suffix
    '.onnx'
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from torchport.errors import BadOptionError
from torchport.formats import aoti, executorch, onnx, torchscript
from torchport.formats._capture import capture, dynamic_shapes
from torchport.formats._core import (
    COMPILE_KEY, GOLDEN_FILE, MANIFEST_FILE, Call, Format, Job, Prepared, check_outputs, output_tensors,
)

#: every format, by name, in the order format="all" writes them
REGISTRY: dict[str, Format] = {f.name: f for f in (torchscript.FORMAT, aoti.FORMAT, onnx.FORMAT, executorch.FORMAT)}

#: the formats ``export(format="all")`` writes side by side
FORMATS = tuple(name for name, f in REGISTRY.items() if f.in_all)
SUFFIXES = {name: f.suffix for name, f in REGISTRY.items()}


def get(name: str) -> Format:
    """The format called ``name``; BadOptionError naming the known ones otherwise."""
    if name not in REGISTRY:
        raise BadOptionError(f"format: expected one of {tuple(REGISTRY)}, got {name!r}")
    return REGISTRY[name]


def tolerance(fmt: str, delegate: Optional[str] = None) -> Optional[dict[str, float]]:
    """The tolerance ``fmt`` states in its manifests; None for bit-exact formats."""
    return get(fmt).tolerance(delegate)


def cross_check(paths: dict[str, Path]) -> None:
    """Every format's outputs on the golden inputs against every other's, within
    the looser of the two tolerances (both add up from eager)."""
    from torchport.manifest import read_golden

    inputs, _ = read_golden(next(iter(paths.values())))
    results = {fmt: get(fmt).run_file(path, inputs) for fmt, path in paths.items()}
    done = list(results)
    for i, a in enumerate(done):
        for b in done[i + 1:]:
            ta, tb = tolerance(a) or {"atol": 0.0, "rtol": 0.0}, tolerance(b) or {"atol": 0.0, "rtol": 0.0}
            tol = {k: ta[k] + tb[k] for k in ("atol", "rtol")}
            check_outputs(f"{b} against {a}", results[a], results[b], tol if any(tol.values()) else None)


# The names other modules and users import from torchport.formats.
from torchport._onnx_records import is_onnx  # noqa: E402
from torchport.formats.aoti import INDUCTOR_CONFIGS, compile_aoti, package_aoti  # noqa: E402
from torchport.formats.executorch import (  # noqa: E402
    DELEGATES, EXECUTORCH_DIM_MAX, EXECUTORCH_TOLERANCES, PTE_TAIL_MAGIC, PTE_TAIL_VERSION, RNN_UNROLL_WARN_STEPS,
    compile_executorch, pack_pte, package_executorch, pte_input_bounds, run_executorch_python,
)
from torchport.formats.onnx import export_onnx, onnxruntime_session, run_onnxruntime  # noqa: E402
from torchport.formats.torchscript import custom_ops  # noqa: E402

#: how far each format's outputs may be from eager's (the golden outputs), by
#: format; TorchScript is bit-exact (no entry)
TOLERANCES: dict[str, dict[str, float]] = {n: t for n in REGISTRY if n != "executorch" and (t := tolerance(n))}

__all__ = [
    "COMPILE_KEY", "Call", "DELEGATES", "EXECUTORCH_DIM_MAX", "EXECUTORCH_TOLERANCES", "FORMATS", "Format",
    "GOLDEN_FILE", "INDUCTOR_CONFIGS", "Job", "MANIFEST_FILE", "PTE_TAIL_MAGIC", "PTE_TAIL_VERSION", "Prepared",
    "REGISTRY", "RNN_UNROLL_WARN_STEPS", "SUFFIXES", "TOLERANCES", "capture", "check_outputs", "compile_aoti",
    "compile_executorch", "cross_check", "custom_ops", "dynamic_shapes", "export_onnx", "get", "is_onnx",
    "onnxruntime_session", "output_tensors", "pack_pte", "package_aoti", "package_executorch", "pte_input_bounds",
    "run_executorch_python", "run_onnxruntime", "tolerance",
]
