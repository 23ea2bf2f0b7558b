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
  runs (``.pt``, ``.pt2``, ``.pte``, and ``.onnx`` through its ONNX Runtime
  backend);
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
call; 1 otherwise), tied to the artifact and the winning file by the runtime's
``profile_checksum``: the manifest's payload checksum, or an ONNX model's
whole-file XXH3-128 (its manifest records none).
"""

from __future__ import annotations

import functools
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from torchport._report import text_table
from torchport.benchmark import batched_inputs, check_positive, shares_batch_dim
from torchport.errors import BadArtifactError, BadInputError, BadOptionError, TorchportError
from torchport.manifest import Manifest, read_golden, read_manifest
from torchport.optimize import LEVELS as EXPORT_LEVELS
from torchport.runtimes import REGISTRY, Loaded

#: Levels that can be applied at load, lowest first ("" keeps the exported one).
#: the export levels (torchport.optimize.LEVELS) as the runtime's load option names ("" for none)
LEVELS = tuple("" if level == "none" else level for level in EXPORT_LEVELS)


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


def _files(path: Path, manifest) -> list[tuple[Path, Any, str]]:
    """The artifact and its siblings the C++ runtime runs, with their manifests
    and the checksums a profile ties them to (the runtime's ``profile_checksum``)."""
    from torchport.formats import SUFFIXES  # imported here: it loads the extension
    from torchport.native import load_native

    found = [(path, manifest, load_native().profile_checksum(str(path)))]
    for fmt, suffix in SUFFIXES.items():
        sibling = path.with_suffix(suffix)
        if sibling == path or not sibling.is_file():
            continue
        try:
            m = read_manifest(sibling)
            tie = load_native().profile_checksum(str(sibling))
        except TorchportError:
            continue  # not an artifact the runtime reads, or none a profile can tie to: not a candidate
        if (m.format or "torchscript") == fmt:
            found.append((sibling, m, tie))
    return found


def _parity(loaded: Loaded, golden_in, golden_out, names, atol: float, rtol: float) -> tuple[bool, float, str]:
    from torchport.comparison import compare

    rows = compare("native", names, golden_out, list(loaded.run(golden_in)), atol, rtol)
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
    from torchport.native import load_native

    check_positive(batch=batch, threads=threads)
    for t in threads:
        load_native().check_options(threads=t)  # the runtime's rule for thread counts
    check_positive(iters=iters, rounds=rounds)
    path = Path(artifact)
    manifest = _tunable(path)
    atol, rtol = _tolerance(manifest, atol, rtol)
    golden_in, golden_out = read_golden(path)
    batched = shares_batch_dim(manifest)
    if not batched and batch != golden_in[0].shape[0]:
        raise BadOptionError(f"batch: '{path}' has no shared batch dim; it runs only at batch {golden_in[0].shape[0]}")
    timed_inputs = batched_inputs(golden_in, batched, batch)
    out = Path(profile) if profile is not None else default_profile_path(path)
    files = _files(path, manifest)
    if any(out.resolve() == f.resolve() for f, _, _ in files):
        raise BadOptionError(f"profile: '{out}' is the artifact or one of its siblings; name another file")
    report = TuneReport(artifact=str(path), batch=batch, atol=atol, rtol=rtol, iters=iters, rounds=rounds,
                        candidates=_candidates(files, threads))
    check = functools.partial(_parity, golden_in=golden_in, golden_out=golden_out, names=manifest.output_names,
                              atol=atol, rtol=rtol)
    previous_threads = torch.get_num_threads()
    try:
        loaded = _load_passing(report.candidates, check)
        _time_and_recheck(report.candidates, loaded, timed_inputs, iters, rounds, warmup, check)
    finally:
        torch.set_num_threads(previous_threads)
    _write_profile(report, {str(f): tie for f, _, tie in files}, str(path), out)
    return report


def _tunable(path: Path) -> Manifest:
    """The artifact's manifest, refused unless a profile can be tied to it and checked."""
    from torchport.native import load_native

    manifest = read_manifest(path)  # the runtime's reader: refuses what it would not load
    load_native().profile_checksum(str(path))  # BadArtifactError when a profile has nothing to tie to
    if not manifest.golden:
        raise BadArtifactError(f"'{path}' holds no golden examples to check the candidates' parity against")
    return manifest


def _tolerance(manifest: Manifest, atol: Optional[float], rtol: Optional[float]) -> tuple[float, float]:
    """The tolerance given, else the manifest's (bit-exact when it states none)."""
    from torchport.native import load_native

    tol = manifest.tolerance or {}
    atol = float(tol.get("atol", 0.0)) if atol is None else float(atol)
    rtol = float(tol.get("rtol", 0.0)) if rtol is None else float(rtol)
    load_native().compare_outputs([], [], [], atol=atol, rtol=rtol)  # the runtime's rule for tolerances
    return atol, rtol


def _candidates(files: list[tuple[Path, Any, str]], threads: Sequence[int]) -> list[Candidate]:
    """Every file, thread count and (for TorchScript) load level and optimize_graph setting."""
    candidates = []
    for file, m, _ in files:
        fmt = m.format or "torchscript"
        exported = LEVELS.index(m.optimize) if m.optimize in LEVELS else (0 if m.optimize in ("", "none") else 1)
        levels = [lv for i, lv in enumerate(LEVELS) if i == 0 or i > exported] if fmt == "torchscript" else [""]
        graphs = (True, False) if fmt == "torchscript" else (True,)
        for t in threads:
            for level in levels:
                for graph in graphs:
                    candidates.append(Candidate(str(file), fmt, t, level, graph))
    return candidates


def _load_passing(candidates: list[Candidate], check) -> dict[int, Loaded]:
    """Each candidate loaded by the C++ runtime and checked on its first call;
    those that pass, by index."""
    loaded: dict[int, Loaded] = {}
    for i, c in enumerate(candidates):
        try:
            torch.set_num_threads(c.threads)
            model = REGISTRY["native"].load(c.file, threads=c.threads, options={
                "optimize": c.optimize, "optimize_graph": c.optimize_graph})
            c.ok, c.max_abs_diff, c.why = check(model)
        except TorchportError as e:
            c.why = str(e).splitlines()[0]
            continue
        if c.ok:
            loaded[i] = model
    return loaded


def _time_and_recheck(candidates: list[Candidate], loaded: dict[int, Loaded], inputs: list[torch.Tensor],
                      iters: int, rounds: int, warmup: int, check) -> None:
    """Alternating rounds of the C++ loop over the passing candidates (the median
    of each round's p50), then parity again on the plan the rounds optimised."""
    samples: dict[int, list[float]] = {i: [] for i in loaded}
    for _ in range(rounds):
        for i in list(loaded):
            c = candidates[i]
            torch.set_num_threads(c.threads)
            try:
                samples[i].append(loaded[i].model.benchmark(inputs, iters=iters, warmup=warmup)["p50_ms"])
            except BadInputError as e:  # a batch the file cannot take (a .pte's planned bound)
                c.ok, c.why = False, str(e).splitlines()[0]
                del loaded[i]
    for i, model in loaded.items():
        c = candidates[i]
        c.p50_ms = statistics.median(samples[i])
        torch.set_num_threads(c.threads)
        ok, diff, why = check(model)  # the optimised plan too
        c.ok, c.max_abs_diff, c.why = ok, max(diff, c.max_abs_diff or 0.0), why


def _write_profile(report: TuneReport, checksums: dict[str, str], artifact: str, out: Path) -> None:
    """The fastest candidate that kept parity, as a profile tied to the artifact's checksum."""
    from torchport._files import write_bytes
    from torchport.native import load_native

    kept = [c for c in report.candidates if c.ok and c.p50_ms is not None]
    if not kept:
        return
    best = min(kept, key=lambda c: c.p50_ms)
    report.best = best
    measured = {"p50_ms": {c.label: c.p50_ms for c in kept}, "torch": torch.__version__}
    prof = load_native().Profile(
        artifact_checksum=checksums[artifact], format=best.format, file_checksum=checksums[best.file],
        threads=best.threads, warmup_runs=2 if best.format == "torchscript" and best.optimize_graph else 1,
        optimize_graph=best.optimize_graph, optimize=best.optimize, atol=report.atol, rtol=report.rtol,
        batch=report.batch, measured_json=json.dumps(measured),
    )
    write_bytes(out, prof.to_json().encode(), overwrite=True)
    report.profile = str(out)
