"""Parity: the same input bytes through every runtime, compared output by output.

    >>> report = torchport.verify("model.pt", model=model)
    >>> print(report)
    >>> assert report.ok
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from torchport._report import RowVerdict, text_table
from torchport.errors import BadOptionError, TorchportError
from torchport._warnings import jit as _jit
from torchport.exporter import _outputs_tuple
from torchport.comparison import ParityRow, compare
from torchport.manifest import Manifest, read_golden, read_manifest
from torchport.native import NativeModel, binary_path, load_native

RUNTIMES = ("eager", "torchscript", "aoti", "onnxruntime", "executorch", "native", "binary")
#: which runtimes read which artifact format ("eager" runs the model itself)
FORMAT_RUNTIMES = {
    "torchscript": ("torchscript", "native", "binary"),  # torch.jit.load in Python, the C++ runtime
    "aoti": ("aoti", "native", "binary"),  # torch._inductor.aoti_load_package in Python, the C++ runtime
    "onnx": ("onnxruntime", "native", "binary"),  # ONNX Runtime in Python, the C++ runtime (its ONNX Runtime backend)
    "executorch": ("executorch", "native", "binary"),  # ExecuTorch's Python runtime, the C++ runtime
}
#: each format's Python runtime: the reference for custom inputs without the eager model
PYTHON_RUNTIME = {"torchscript": "torchscript", "aoti": "aoti", "onnx": "onnxruntime", "executorch": "executorch"}


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


def run_binary(path: Union[str, Path], inputs: Sequence[torch.Tensor], *, threads: Optional[int] = None,
               libraries: Sequence[str] = ()) -> tuple[torch.Tensor, ...]:
    """Runs ``torchport-run predict`` in a subprocess and reads its output back."""
    with tempfile.TemporaryDirectory(prefix="torchport-") as tmp:
        src, dst = Path(tmp) / "inputs.pt", Path(tmp) / "outputs.pt"
        torch.save([t.detach().cpu() for t in inputs], src)
        cmd = [str(binary_path()), "predict", str(path), "--input", str(src), "--output", str(dst)]
        if threads:
            cmd += ["--threads", str(threads)]
        for lib in libraries:
            cmd += ["--load-library", lib]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise TorchportError(f"torchport-run exited {proc.returncode}: {proc.stderr.strip()}")
        out = load_native().read_outputs_file(str(dst))  # the runtime's reader, flattened in output order
    return tuple(out)


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
        unknown = set(runtimes) - set(RUNTIMES)
        if unknown:
            raise BadOptionError(f"runtimes: unknown {sorted(unknown)}; choose from {RUNTIMES}")
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


def _call(fn, manifest: Manifest, tensors):
    """Calls the eager model or a loaded TorchScript module as the runtime does:
    with the manifest's constants by keyword, and then the inputs by name."""
    if not manifest.constants:
        return fn(*tensors)
    kwargs = {**dict(zip(manifest.input_names, tensors)), **manifest.constants}
    if isinstance(fn, torch.jit.ScriptModule):  # a traced module takes only its tensors
        params = {a.name for a in fn.forward.schema.arguments}
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(**kwargs)


def _verify(path, manifest: Manifest, model, inputs, atol: float, rtol: float, threads: int, runtimes,
            libraries: list[str]) -> ParityReport:

    if inputs is None:
        tensors, expected = read_golden(path)
        reference = "golden outputs"
    elif isinstance(inputs, Mapping):  # by name: the runtime's ordering rule
        tensors = NativeModel(path, libraries=libraries).order_inputs(inputs)
        expected = None
    else:
        tensors = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
        expected = None
        reference = ""

    results: dict[str, Any] = {}

    def attempt(runtime: str, fn) -> None:
        try:
            results[runtime] = fn()
        except Exception as e:  # noqa: BLE001 - a failing runtime is a row, not a crash
            results[runtime] = e

    if model is not None and "eager" in runtimes:
        model.eval()

        def eager():
            with torch.inference_mode():
                return _outputs_tuple(_call(model, manifest, tensors))

        attempt("eager", eager)
    if "torchscript" in runtimes:

        def scripted():
            module = _jit(torch.jit.load, str(path), map_location="cpu")
            with torch.inference_mode():
                return _outputs_tuple(_call(module, manifest, tensors))

        attempt("torchscript", scripted)
    if "aoti" in runtimes:

        def compiled():
            package = torch._inductor.aoti_load_package(str(path))
            with torch.inference_mode():
                return _outputs_tuple(package(*tensors))

        attempt("aoti", compiled)
    if "executorch" in runtimes:
        from torchport.formats import run_executorch_python

        attempt("executorch", lambda: run_executorch_python(path, tensors))
    if "onnxruntime" in runtimes:
        from torchport.formats import onnxruntime_session, run_onnxruntime

        attempt("onnxruntime", lambda: run_onnxruntime(onnxruntime_session(path, threads), tensors))
    if "native" in runtimes:
        attempt("native", lambda: NativeModel(path, threads=threads, libraries=libraries).run(*tensors))
    if "binary" in runtimes:
        attempt("binary", lambda: run_binary(path, tensors, threads=threads, libraries=libraries))

    if expected is None:
        python_runtime = PYTHON_RUNTIME[manifest.format or "torchscript"]
        reference = "eager" if "eager" in results else python_runtime
        if reference not in results:
            raise BadOptionError(f"verify with custom inputs needs the eager model or the {python_runtime} runtime")
        if isinstance(results[reference], Exception):
            raise results[reference]
        expected = results.pop(reference)

    names = manifest.output_names_for(len(expected))  # a list per batch element names each element's outputs
    report = ParityReport(str(path), reference, atol, rtol, threads, format=manifest.format or "torchscript")
    for runtime, got in results.items():
        if isinstance(got, Exception):
            report.rows.append(
                ParityRow(runtime, "*", None, None, float("inf"), float("inf"), False, False, f"{type(got).__name__}: {got}")
            )
        else:
            report.rows.extend(compare(runtime, names, expected, got, atol, rtol))
    return report
