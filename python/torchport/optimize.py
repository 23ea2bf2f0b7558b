"""TorchScript optimisation levels for ``export(..., optimize=...)``.

- ``"none"`` (default): the graph as scripted or traced; bit-exact against eager.
- ``"freeze"``: ``torch.jit.freeze``: parameters become constants, and passes
  such as conv-BN folding and dead-code removal run on the frozen graph.
- ``"fast"``: freeze, then ``torch.jit.optimize_for_inference``: oneDNN (mkldnn)
  blocked layouts and conv+activation fusion where they apply. The oneDNN
  weight constants that pass creates cannot be saved (``torch.jit.load`` fails
  on them), so the file holds the frozen graph and the C++ runtime runs
  ``torch::jit::optimize_for_inference`` when it loads an artifact whose
  manifest says ``"fast"``; export measures the same pass run in Python.

A level other than ``"none"`` changes float rounding, so export measures the
largest ``|optimised - eager|`` on the golden inputs and on the same inputs at
twice their batch, and records ``SAFETY_FACTOR`` times it (at least
``ATOL_FLOOR``) as the manifest's ``tolerance`` atol; ``verify`` and the
runtime's selfcheck judge against that.

    >>> import torch, torchport
    >>> m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    >>> torchport.export(m, torch.rand(2, 1, 8, 8), "cnn.pt", optimize="freeze")
    PosixPath('cnn.pt')
"""

from __future__ import annotations

import io
import math
from typing import Any, Callable

import torch

from torchport._warnings import jit
from torchport.errors import BadOptionError, ExportError

LEVELS = ("none", "freeze", "fast")
#: the recorded atol is this many times the largest difference measured at export
SAFETY_FACTOR = 10.0
#: the smallest atol a non-bit-exact level records (a level that happened to
#: match eager exactly on the export inputs may not elsewhere)
ATOL_FLOOR = 1e-6
#: where export records what it measured, in the manifest's metadata
METADATA_KEY = "torchport.optimize"


def check_level(level: Any) -> str:
    if level not in LEVELS:
        raise BadOptionError(f"optimize: expected one of {LEVELS}, got {level!r}")
    return level


_quiet = jit  # the one jit-warning filter (torchport._warnings)


def apply(module: torch.jit.ScriptModule, level: str) -> torch.jit.ScriptModule:
    """The module to save for ``level``: ``module`` itself for "none", frozen
    for "freeze" and "fast" (the runtime adds "fast"'s pass at load)."""
    check_level(level)
    if level == "none":
        return module
    try:
        return _quiet(torch.jit.freeze, module.eval())
    except Exception as e:  # noqa: BLE001 - the passes fail with many error types
        text = str(e).strip().splitlines()
        raise ExportError(f"optimize={level!r}: torch.jit.freeze failed: {text[0] if text else type(e).__name__}") from e


def for_inference(frozen: torch.jit.ScriptModule, level: str) -> torch.jit.ScriptModule:
    """What runs for ``level``: ``frozen`` (from ``apply``), or for "fast" a
    copy saved and loaded back with ``optimize_for_inference`` run on it, as
    the runtime does at load."""
    if level != "fast":
        return frozen
    try:
        buf = io.BytesIO()
        _quiet(torch.jit.save, frozen, buf)
        buf.seek(0)
        return _quiet(torch.jit.optimize_for_inference, _quiet(torch.jit.load, buf))
    except Exception as e:  # noqa: BLE001 - the passes fail with many error types
        text = str(e).strip().splitlines()
        raise ExportError(f"optimize={level!r}: torch.jit could not optimise the model: "
                          f"{text[0] if text else type(e).__name__}") from e


def _doubled(inputs: tuple[torch.Tensor, ...], batched: list[bool]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.cat([t, t]) if b else t for t, b in zip(inputs, batched))


def measure(optimised: torch.jit.ScriptModule, eager: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
            batched: list[bool], level: str, outputs_of: Callable[[Any], tuple]) -> dict[str, float]:
    """Runs ``optimised`` and ``eager`` on ``inputs`` and, when they share a
    batch dim (``batched``), on the inputs at twice the batch; returns what
    export records: ``{"max_abs_diff", "safety_factor", "atol"}``. Integer or
    boolean outputs must match exactly, and the optimised module must accept
    the other batch size, or export fails naming the level."""
    probes = [("the export inputs", inputs)]
    if any(batched):
        probes.append(("the export inputs at twice the batch", _doubled(inputs, batched)))
    worst = 0.0
    for what, probe in probes:
        with torch.inference_mode():
            expected = outputs_of(eager(*probe))
            try:
                got = outputs_of(optimised(*probe))
            except Exception as e:  # noqa: BLE001 - a frozen graph may have lost shape generality
                text = str(e).strip().splitlines()
                raise ExportError(f"optimize={level!r}: the optimised model fails on {what}: "
                                  f"{text[0] if text else type(e).__name__}; export with optimize='none'") from e
        for i, (e, g) in enumerate(zip(expected, got)):
            if e.shape != g.shape or e.dtype != g.dtype:
                raise ExportError(f"optimize={level!r}: output {i} on {what}: expected {e.dtype} "
                                  f"{list(e.shape)} as eager gives, got {g.dtype} {list(g.shape)}")
            if not (e.is_floating_point() or e.is_complex()):
                if not torch.equal(e, g):
                    raise ExportError(f"optimize={level!r}: output {i} ({e.dtype}) on {what} differs from eager; "
                                      "a level may only change float rounding: export with optimize='none'")
                continue
            if e.numel():
                diff = (g.to(torch.complex128 if e.is_complex() else torch.float64) - e).abs()
                diff = diff[~(e.isnan() & g.isnan())]  # NaN where eager has NaN is no difference
                d = float(diff.max()) if diff.numel() else 0.0
                if not math.isfinite(d):
                    raise ExportError(f"optimize={level!r}: output {i} on {what} is not finite where eager's is; "
                                      "export with optimize='none'")
                worst = max(worst, d)
    return {"max_abs_diff": worst, "safety_factor": SAFETY_FACTOR, "atol": max(SAFETY_FACTOR * worst, ATOL_FLOOR)}
