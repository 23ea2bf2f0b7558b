"""``torchport tune``: time the ways the C++ runtime can run an artifact, keep
those whose outputs pass parity, and write the fastest into a profile that
``Model::load`` applies (``Options::profile``, ``NativeModel(..., profile=)``,
``torchport-run --profile``).

    >>> report = tune("model.pt", batch=1, threads=[1, 2])
    >>> print(report)            # every candidate, its p50 and parity
    >>> NativeModel("model.pt", profile=report.profile).options.threads

Candidates (all in one process, timed in alternating rounds by the C++ loop
that ``torchport bench``'s ``native-cpp`` contender uses):

- files: the artifact and its siblings of the same stem that the C++ runtime
  runs (``.pt``, ``.pt2``, ``.pte``);
- for TorchScript: the level applied at load (``""`` as exported, ``"freeze"``,
  ``"fast"``; only levels above the exported one) and ``optimize_graph``
  (on, off);
- the intra-op thread counts given.

A candidate is kept only when its outputs on the artifact's golden inputs,
both on the first call after load and after the timed rounds (when the
profiling executor has optimised the graph), pass the runtime's one comparison
(``compare_outputs``) against the golden outputs at the tolerance: the
manifest's own unless given (bit-exact for a default artifact). The profile
records the winner's file format, level, ``optimize_graph`` and threads, and
``warmup_runs`` (2 with the profiling executor, which optimises on the second
call; 1 otherwise), tied to the artifact by its manifest checksum.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from torchport._report import text_table
from torchport.benchmark import batched_inputs
from torchport.errors import BadArtifactError, BadInputError, BadOptionError, TorchportError
from torchport.manifest import read_golden, read_manifest
from torchport.optimize import LEVELS as EXPORT_LEVELS

#: Levels that can be applied at load, lowest first ("" keeps the exported one).
#: the export levels (torchport.optimize.LEVELS) as the runtime's load option names ("" for none)
LEVELS = tuple("" if level == "none" else level for level in EXPORT_LEVELS)
_SUFFIX = {"torchscript": ".pt", "aoti": ".pt2", "executorch": ".pte"}


@dataclass
class Candidate:
    file: str
    format: str
    threads: int
    optimize: str = ""  # the level applied at load ("" as exported)
    optimize_graph: bool = True
    p50_ms: Optional[float] = None  # median over rounds of the C++ loop's p50
    max_abs_diff: Optional[float] = None  # worst over outputs and parity checks
    ok: bool = False  # within tolerance on every check
    why: str = ""  # why it was dropped

    @property
    def label(self) -> str:
        parts = [Path(self.file).name, f"threads={self.threads}"]
        if self.format == "torchscript":
            parts += [f"optimize={self.optimize or 'as exported'}", f"optimize_graph={'on' if self.optimize_graph else 'off'}"]
        return " ".join(parts)


@dataclass
class TuneReport:
    artifact: str
    batch: int
    atol: float
    rtol: float
    iters: int
    rounds: int
    candidates: list[Candidate] = field(default_factory=list)
    best: Optional[Candidate] = None
    profile: Optional[str] = None  # the profile written, when a candidate passed

    @property
    def ok(self) -> bool:
        return self.best is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"tune {self.artifact} (batch {self.batch}, tolerance atol={self.atol:g} rtol={self.rtol:g}; "
                 f"{self.rounds} alternating rounds of {self.iters} calls)"]
        rows = []
        for c in sorted(self.candidates, key=lambda c: (not c.ok, c.p50_ms if c.p50_ms is not None else float("inf"))):
            diff = "-" if c.max_abs_diff is None else f"{c.max_abs_diff:.3g}"
            p50 = "-" if c.p50_ms is None else f"{c.p50_ms:.4f}"
            rows.append([c.label, p50, diff, "yes" if c.ok else f"no ({c.why})"])
        lines += text_table(["candidate", "p50 ms", "max |diff|", "kept"], rows, indent="  ")
        if self.best is None:
            lines.append("no candidate passed parity at this tolerance; no profile written")
        else:
            lines.append(f"fastest: {self.best.label}; profile: {self.profile}")
        return "\n".join(lines)


def default_profile_path(artifact: Union[str, Path]) -> Path:
    """``model.pt`` -> ``model.profile.json`` beside it."""
    path = Path(artifact)
    return path.with_name(path.stem + ".profile.json")


def _files(path: Path, manifest) -> list[tuple[Path, Any]]:
    """The artifact and its siblings the C++ runtime runs, with their manifests."""
    found = [(path, manifest)]
    for fmt, suffix in _SUFFIX.items():
        sibling = path.with_suffix(suffix)
        if sibling == path or not sibling.is_file():
            continue
        try:
            m = read_manifest(sibling)
        except TorchportError:
            continue  # not an artifact the runtime reads: not a candidate
        if (m.format or "torchscript") == fmt and m.checksum:
            found.append((sibling, m))
    return found


def _parity(model, golden_in, golden_out, names, atol: float, rtol: float) -> tuple[bool, float, str]:
    from torchport.comparison import compare

    rows = compare("native", names, golden_out, list(model.run(*golden_in)), atol, rtol)
    worst = max((r.max_abs_diff for r in rows), default=0.0)
    bad = [r for r in rows if not r.ok]
    why = "" if not bad else (bad[0].error or f"'{bad[0].output}': max |diff| {bad[0].max_abs_diff:.3g}")
    return not bad, worst, why


def tune(
    artifact: Union[str, Path],
    *,
    batch: int = 1,
    threads: Sequence[int] = (1,),
    atol: Optional[float] = None,
    rtol: Optional[float] = None,
    profile: Union[str, Path, None] = None,
    iters: int = 50,
    rounds: int = 3,
    warmup: int = 5,
) -> TuneReport:
    """Times every candidate that applies (see the module docstring), keeps
    those within tolerance and writes the fastest into ``profile`` (default
    ``default_profile_path(artifact)``, replaced if it exists).

        >>> tune("model.pt", threads=[1, 2], atol=1e-5).best.label
    """
    from torchport._files import write_bytes
    from torchport.native import NativeModel, load_native

    native = load_native()
    if not isinstance(batch, int) or batch < 1:
        raise BadOptionError(f"batch: expected a positive integer, got {batch!r}")
    if not threads or any(not isinstance(t, int) or t < 1 for t in threads):
        raise BadOptionError(f"threads: expected positive integers, got {list(threads)}")
    for t in threads:
        native.check_options(threads=t)  # the runtime's rule for thread counts
    for what, value in (("iters", iters), ("rounds", rounds)):
        if not isinstance(value, int) or value < 1:
            raise BadOptionError(f"{what}: expected a positive integer, got {value!r}")
    path = Path(artifact)
    manifest = read_manifest(path)  # the runtime's reader: refuses what it would not load
    if not manifest.checksum:
        raise BadArtifactError(f"'{path}' records no checksum to tie a profile to (a plain TorchScript file, or an "
                               "export older than checksums); export it again with torchport")
    if not manifest.golden:
        raise BadArtifactError(f"'{path}' holds no golden examples to check the candidates' parity against")
    tol = manifest.tolerance or {}
    atol = float(tol.get("atol", 0.0)) if atol is None else float(atol)
    rtol = float(tol.get("rtol", 0.0)) if rtol is None else float(rtol)
    native.compare_outputs([], [], [], atol=atol, rtol=rtol)  # the runtime's rule for tolerances
    golden_in, golden_out = read_golden(path)
    names = manifest.output_names
    batched = all(s.shape is not None and len(s.shape) > 0 and s.shape[0] == "batch" for s in manifest.inputs)
    if not batched and batch != golden_in[0].shape[0]:
        raise BadOptionError(f"batch: '{path}' has no shared batch dim; it runs only at batch {golden_in[0].shape[0]}")
    timed_inputs = batched_inputs(golden_in, batched, batch)
    out = Path(profile) if profile is not None else default_profile_path(path)
    files = _files(path, manifest)
    if any(out.resolve() == f.resolve() for f, _ in files):
        raise BadOptionError(f"profile: '{out}' is the artifact or one of its siblings; name another file")
    report = TuneReport(artifact=str(path), batch=batch, atol=atol, rtol=rtol, iters=iters, rounds=rounds)

    checksums: dict[str, str] = {}
    for file, m in files:
        fmt = m.format or "torchscript"
        checksums[str(file)] = m.checksum
        exported = LEVELS.index(m.optimize) if m.optimize in LEVELS else (0 if m.optimize in ("", "none") else 1)
        levels = [lv for i, lv in enumerate(LEVELS) if i == 0 or i > exported] if fmt == "torchscript" else [""]
        graphs = (True, False) if fmt == "torchscript" else (True,)
        for t in threads:
            for level in levels:
                for graph in graphs:
                    report.candidates.append(Candidate(str(file), fmt, t, level, graph))

    previous_threads = torch.get_num_threads()
    loaded: dict[int, Any] = {}
    samples: dict[int, list[float]] = {}
    try:
        for i, c in enumerate(report.candidates):
            try:
                torch.set_num_threads(c.threads)
                model = NativeModel(c.file, threads=c.threads, optimize=c.optimize, optimize_graph=c.optimize_graph)
                c.ok, c.max_abs_diff, c.why = _parity(model, golden_in, golden_out, names, atol, rtol)
            except TorchportError as e:
                c.why = str(e).splitlines()[0]
                continue
            if c.ok:
                loaded[i], samples[i] = model, []
        for _ in range(rounds):
            for i in list(loaded):
                c = report.candidates[i]
                torch.set_num_threads(c.threads)
                try:
                    samples[i].append(loaded[i].benchmark(timed_inputs, iters=iters, warmup=warmup)["p50_ms"])
                except BadInputError as e:  # a batch the file cannot take (a .pte's planned bound)
                    c.ok, c.why = False, str(e).splitlines()[0]
                    del loaded[i]
        for i, model in loaded.items():
            c = report.candidates[i]
            c.p50_ms = statistics.median(samples[i])
            torch.set_num_threads(c.threads)
            ok, diff, why = _parity(model, golden_in, golden_out, names, atol, rtol)  # the optimised plan too
            c.ok, c.max_abs_diff, c.why = ok, max(diff, c.max_abs_diff or 0.0), why
    finally:
        torch.set_num_threads(previous_threads)

    kept = [c for c in report.candidates if c.ok and c.p50_ms is not None]
    if not kept:
        return report
    best = min(kept, key=lambda c: c.p50_ms)
    report.best = best
    measured = {"p50_ms": {c.label: c.p50_ms for c in kept}, "torch": torch.__version__}
    prof = native.Profile(
        artifact_checksum=manifest.checksum, format=best.format, file_checksum=checksums[best.file],
        threads=best.threads, warmup_runs=2 if best.format == "torchscript" and best.optimize_graph else 1,
        optimize_graph=best.optimize_graph, optimize=best.optimize, atol=atol, rtol=rtol, batch=batch,
        measured_json=json.dumps(measured),
    )
    write_bytes(out, prof.to_json().encode(), overwrite=True)
    report.profile = str(out)
    return report
