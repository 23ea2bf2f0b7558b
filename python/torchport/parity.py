"""Parity: the same input bytes through every runtime, compared output by output.

    >>> report = torchport.verify("model.pt", model=model)
    >>> print(report)
    >>> assert report.ok
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from torchport._report import RowVerdict, text_table
from torchport.comparison import ParityRow, compare
from torchport.errors import BadOptionError
from torchport.manifest import Manifest, read_golden, read_manifest
from torchport.native import NativeModel, load_native
from torchport.runtimes import REGISTRY, check_names, python_runtime, readers
from torchport.runtimes import run_binary  # noqa: F401 - re-exported: torchport.parity.run_binary

RUNTIMES = tuple(REGISTRY)
#: which runtimes read which artifact format ("eager" runs the model itself)
FORMAT_RUNTIMES = {fmt: readers(fmt) for fmt in REGISTRY["native"].formats}
#: each format's Python runtime: the reference for custom inputs without the eager model
PYTHON_RUNTIME = {fmt: python_runtime(fmt) for fmt in FORMAT_RUNTIMES}


@dataclass
class ParityReport(RowVerdict):
    """Rows per runtime and output; ``ok`` when every row is within tolerance."""

    artifact: str
    reference: str
    atol: float
    rtol: float
    threads: int
    rows: list[ParityRow] = field(default_factory=list)
    format: str = "torchscript"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["bit_exact"] = self.bit_exact
        for r in d["rows"]:
            for k in ("max_abs_diff", "max_rel_diff"):
                if r[k] != r[k] or r[k] in (float("inf"), float("-inf")):
                    r[k] = None
        return d

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        head = ("runtime", "output", "shape", "dtype", "max abs diff", "max rel diff", "bit-exact", "ok")
        body = []
        for r in self.rows:
            body.append(
                (
                    r.runtime,
                    r.output,
                    "-" if r.shape is None else "[" + ", ".join(map(str, r.shape)) + "]",
                    r.dtype or "-",
                    f"{r.max_abs_diff:.3g}",
                    f"{r.max_rel_diff:.3g}",
                    "yes" if r.bit_exact else "no",
                    "ok" if r.ok else "FAIL",
                )
            )
        out = [
            f"parity of {self.artifact} ({self.format}) against {self.reference} (atol={self.atol:g}, rtol={self.rtol:g}, "
            f"threads={self.threads})",
            *text_table(head, body),
        ]
        out += [f"  {r.runtime}: {r.error}" for r in self.rows if r.error]
        verdict = "bit-exact" if self.bit_exact else ("within tolerance" if self.ok else "MISMATCH")
        out.append(f"result: {verdict}")
        return "\n".join(out)


def verify(
    path: Union[str, Path],
    *,
    model: Optional[torch.nn.Module] = None,
    inputs: Any = None,
    atol: Optional[float] = None,
    rtol: Optional[float] = None,
    threads: Optional[int] = None,
    runtimes: Optional[Sequence[str]] = None,
    libraries: Optional[Sequence[Union[str, Path]]] = None,
) -> ParityReport:
    """Runs the same inputs through the eager ``model`` (when given) and every
    runtime that reads the artifact's format; compares each with the reference.

    TorchScript: ``torch.jit.load`` in Python, the C++ runtime through the
    binding, and the ``torchport-run`` binary. AOTInductor ``.pt2``:
    ``torch._inductor.aoti_load_package`` in Python, the binding and the binary.
    ExecuTorch ``.pte``: ExecuTorch's Python runtime, the binding and the
    binary. ONNX: ONNX Runtime in Python, the binding and the binary (the C++
    runtime's ONNX Runtime backend). ``runtimes`` narrows the choice.

    The reference is the golden outputs when ``inputs`` is None (the default:
    the golden inputs), else the eager model when given, else the format's
    Python runtime. ``atol``/``rtol`` default to the tolerance the manifest
    states for its format (bit-exact for TorchScript); explicit ones may be
    stricter. All runtimes use the same intra-op thread count (``threads``,
    default torch's current one). ``libraries`` are the custom operator
    libraries the artifact needs: loaded into this process (for TorchScript in
    Python and the binding) and passed to the binary as ``--load-library``.

        >>> report = verify("model.pt", model=model)
        >>> report.ok, report.bit_exact
        (True, True)
    """
    if runtimes is not None:
        check_names(runtimes, RUNTIMES)
    # The runtime's checks of atol and rtol (None: the manifest's, checked when it was read).
    load_native().compare_outputs([], [], [], atol=0.0 if atol is None else atol, rtol=0.0 if rtol is None else rtol)
    load_native().check_options(threads=threads or 0)  # the runtime's rule for thread counts
    manifest = read_manifest(path)
    fmt = manifest.format or "torchscript"
    readers = FORMAT_RUNTIMES[fmt]  # the runtime's manifest rules admit only these formats
    if runtimes is None:
        runtimes = ("eager", *readers)
    foreign = set(runtimes) - {"eager", *readers}
    if foreign:
        raise BadOptionError(f"runtimes: {sorted(foreign)} do not read {fmt} artifacts; {fmt} is read by {readers}")
    tol = manifest.tolerance or {"atol": 0.0, "rtol": 0.0}
    atol = tol["atol"] if atol is None else atol
    rtol = tol["rtol"] if rtol is None else rtol
    previous_threads = torch.get_num_threads()
    threads = threads or previous_threads
    # One intra-op pool for the whole process (Python torch and the binding
    # share libtorch); the binary gets the same count on its command line.
    torch.set_num_threads(threads)
    libs = [str(p) for p in libraries or ()]
    for lib in libs:  # the operators must be registered before torch.jit.load
        torch.ops.load_library(lib)
    try:
        return _verify(path, manifest, model, inputs, atol, rtol, threads, runtimes, libs)
    finally:
        torch.set_num_threads(previous_threads)


def _inputs(path, inputs: Any, libraries: list[str]) -> tuple[list[torch.Tensor], Optional[list[torch.Tensor]], str]:
    """The tensors to run, the expected outputs (the golden ones, or None when
    a runtime's outputs become the reference) and what the reference is."""
    if inputs is None:
        tensors, expected = read_golden(path)
        return tensors, expected, "golden outputs"
    if isinstance(inputs, Mapping):  # by name: the runtime's ordering rule
        return NativeModel(path, libraries=libraries).order_inputs(inputs), None, ""
    return [inputs] if isinstance(inputs, torch.Tensor) else list(inputs), None, ""


def _verify(path, manifest: Manifest, model, inputs, atol: float, rtol: float, threads: int, runtimes,
            libraries: list[str]) -> ParityReport:
    tensors, expected, reference = _inputs(path, inputs, libraries)
    results: dict[str, Any] = {}
    for runtime in REGISTRY.values():
        if runtime.name not in runtimes or (runtime.kind == "model" and model is None):
            continue
        try:
            loaded = runtime.load(path, threads=threads, libraries=libraries, manifest=manifest, model=model)
            results[runtime.name] = loaded.run(tensors)
        except Exception as e:  # noqa: BLE001 - a failing runtime is a row, not a crash
            results[runtime.name] = e

    fmt = manifest.format or "torchscript"
    if expected is None:
        reference = "eager" if "eager" in results else PYTHON_RUNTIME[fmt]
        if reference not in results:
            raise BadOptionError(f"verify with custom inputs needs the eager model or the {PYTHON_RUNTIME[fmt]} runtime")
        if isinstance(results[reference], Exception):
            raise results[reference]
        expected = results.pop(reference)

    names = manifest.output_names_for(len(expected))  # a list per batch element names each element's outputs
    report = ParityReport(str(path), reference, atol, rtol, threads, format=fmt)
    for runtime, got in results.items():
        if isinstance(got, Exception):
            report.rows.append(
                ParityRow(runtime, "*", None, None, float("inf"), float("inf"), False, False, f"{type(got).__name__}: {got}")
            )
        else:
            report.rows.extend(compare(runtime, names, expected, got, atol, rtol))
    return report
