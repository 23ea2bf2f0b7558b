"""What every format module is written against: the ``Format`` record, the
``Job`` export hands it, and the check that export's bytes reproduce the golden
outputs through the runtime that will run them."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from torchport._ext import load_native
from torchport._files import sweep_temporaries, temporary_folder
from torchport.errors import BadArtifactError, BadOptionError, ExportError, ExportWarning
from torchport.manifest import Manifest

# torchport's record names ("torchport/manifest.json", "torchport/golden.pt"),
# as the runtime defines them.
MANIFEST_FILE: str = load_native().MANIFEST_FILE
GOLDEN_FILE: str = load_native().GOLDEN_FILE
#: Where the manifest's metadata records the compile: seconds, torch, configs.
COMPILE_KEY = "torchport.compile"

Tolerance = Optional[dict[str, float]]  # torch.allclose's atol and rtol; None: bit-exact
Outputs = tuple[torch.Tensor, ...]


@dataclasses.dataclass
class Call:
    """How export calls ``forward``: the tensor inputs by parameter name, the
    non-tensor arguments (export's value or the default) and how the example was given."""

    names: list[str]                 # the parameters that take the tensors, in forward's order
    tensors: tuple[torch.Tensor, ...]
    constants: dict[str, Any]        # every other parameter, by name
    changed: dict[str, Any]          # constants given a value other than their default
    args: tuple[Any, ...]            # the example as the user gave it
    kwargs: dict[str, Any]
    by_keyword: bool                 # given as keywords (or a dict), or with non-tensor arguments


@dataclasses.dataclass
class Job:
    """One export, as a format sees it: the model, how it is called, the
    contract's input names and dynamic dims, the options and the path."""

    model: torch.nn.Module
    call: Call
    names: list[str]                  # the manifest's input names, in order
    dynamic: dict[str, dict[int, Optional[str]]]  # input name -> {dim: dim name or None}
    layout: Any                       # the eager outputs as the runtime describes them
    path: Path
    format: str                       # the Format's name
    method: str = "auto"              # TorchScript: script, trace or auto
    optimize: str = "none"            # TorchScript's optimisation level
    delegate: Optional[str] = None    # ExecuTorch's delegate
    output_names: list[str] = dataclasses.field(default_factory=list)  # set once the layout is final
    returned: Any = None              # what the model returned on the example (the layout's source)
    bounds: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)  # named dims' {"min", "max"}

    @property
    def inputs(self) -> tuple[torch.Tensor, ...]:
        return self.call.tensors

    @property
    def model_name(self) -> str:
        return type(self.model).__name__

    def run_model(self, tensors: Sequence[torch.Tensor]) -> Any:
        """The eager model on tensors in input order, called as export called it:
        for a keyword call, by name with the non-tensor arguments."""
        if self.call.by_keyword:
            return self.model(**dict(zip(self.call.names, tensors)), **self.call.constants)
        return self.model(*tensors)

    def asked_bound(self, name: str, dim: int, cap: Optional[int] = None) -> Optional[int]:
        """The largest size an export may plan input ``name`` dim ``dim`` for: its
        name's bound in the manifest, at most ``cap``; None when unbounded."""
        label = self.dynamic.get(name, {}).get(dim)
        limits = [m for m in (cap, self.bounds.get(label, {}).get("max") if label else None) if m is not None]
        return min(limits) if limits else None


@dataclasses.dataclass
class Prepared:
    """What a format made of the model before the contract is written."""

    run: Callable[[tuple[torch.Tensor, ...]], Any]  # the inputs in order -> what forward returns
    export_method: str                 # recorded in the manifest
    optional: set[str] = dataclasses.field(default_factory=set)  # inputs that may be left out
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)  # added to the manifest's
    tolerance: Tolerance = None        # the manifest's
    state: Any = None                  # the format's own (the module to save)


@dataclasses.dataclass(frozen=True)
class Format:
    """One artifact format: everything torchport's Python side knows of it.
    ``formats.get(name)`` finds it; the C++ runtime has the matching backend."""

    name: str                          # export(format=...) and the manifest's "format"
    title: str                         # how messages name it: "TorchScript", "ONNX"
    suffix: str
    #: before the contract: compile what will run, check the options that apply
    prepare: Callable[[Job], Prepared]
    #: the artifact's bytes, payload checksum in ``manifest``
    build: Callable[[Job, Prepared, Manifest, bytes], bytes]
    #: before anything is written: the runtime that will run the bytes loads them
    #: and reproduces the golden outputs within the manifest's tolerance
    check: Callable[[Job, bytes, Manifest], None]
    #: how export's cross-check of format="all" runs a written file
    run_file: Callable[[Path, Sequence[torch.Tensor]], Outputs]
    #: the tolerance its manifests state, by delegate (None: bit-exact)
    tolerance: Callable[[Optional[str]], Tolerance]
    delegates: tuple[str, ...] = ()   # what export(delegate=...) may name; the first is the default
    optimizes: bool = False            # takes export(optimize=...) levels other than "none"
    per_batch_lists: bool = False      # carries outputs that are a list with one item per batch element
    in_all: bool = True                # written by format="all"


def output_tensors(out: Any) -> Outputs:
    """What ``forward`` returned as the runtime flattens it: its tensors depth first
    (the manifest's output order; torchport::describe_outputs)."""
    return tuple(load_native().describe_outputs(out).tensors)


def check_outputs(what: str, expected, got, tol: Tolerance) -> None:
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


def load_checked(fmt: str, data: bytes, where: str):
    """The C++ runtime's model on ``data``; export refuses what the runtime refuses."""
    try:
        return load_native().load_from_memory(data, where)
    except (BadArtifactError, BadOptionError) as e:
        raise ExportError(f"the runtime refuses the exported {fmt} model, so nothing was written: {e}") from None


def native_check(fmt: str) -> Callable[[Job, bytes, Manifest], None]:
    """``Format.check`` of a format the C++ runtime runs: loaded from the bytes,
    its golden examples reproduced within the manifest's tolerance."""

    def check(job: Job, data: bytes, manifest: Manifest) -> None:
        native = load_checked(fmt, data, str(job.path))
        inputs, outputs = native.golden()
        check_outputs(f"the torchport runtime ({fmt})", outputs, native.run(inputs), manifest.tolerance)

    return check


def run_native_file(path: Path, inputs: Sequence[torch.Tensor]) -> Outputs:
    """``Format.run_file`` of a format the C++ runtime runs."""
    from torchport.native import NativeModel

    return tuple(NativeModel(path, concurrency=1).run(*inputs))


def first_line(e: BaseException) -> str:
    """The first non-blank line of an error (a compiler's message may run to pages)."""
    return next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)


def fixed_tolerance(tol: Tolerance) -> Callable[[Optional[str]], Tolerance]:
    """``Format.tolerance`` of a format whose tolerance does not depend on a delegate."""
    return lambda delegate=None: dict(tol) if tol else None


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def warn_user(message: str, category: type = ExportWarning) -> None:
    """``warnings.warn`` attributed to the user's line: the first caller outside torchport."""
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


@contextlib.contextmanager
def scratch(job: Job, tag: str):
    """A scratch folder for a compiler's files beside the artifact (on its disk,
    not the system's temporary one), removed after; the folder of an export that
    was killed is swept by the next export to the same folder."""
    folder = job.path.parent
    sweep_temporaries(folder)
    tmp = temporary_folder(folder, tag)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
