"""``torchport bench``: the runtimes that can run an artifact, side by side in
one process, with the same inputs and thread settings, in alternating rounds.

    >>> report = bench("model.pt", batches=[1, 32], threads=[1])
    >>> print(report)
    >>> report.write_json("bench.json"); report.plot("bench.png")

Contenders (``RUNTIMES``; ``CONTENDERS`` names the runtime of
``torchport.runtimes`` that runs each, and on which file), those that apply
to the artifact:

- ``eager``: the model ``eager()`` returns (when given; ``torchport.bench.bench``
  rebuilds it from a ``checkpoint``);
- ``torchscript``: ``torch.jit.load`` called from Python;
- ``native``: the C++ runtime through the binding (``NativeModel.run``);
- ``native-cpp``: the C++ runtime without Python (``NativeModel.benchmark``,
  a C++ loop of ``Model::run``);
- ``aoti``: the ``.pt2`` beside the artifact (same stem), run by the C++ runtime;
- ``executorch``: the ``.pte`` beside the artifact, run by the C++ runtime (a
  batch above the bound ExecuTorch planned is left out for it, and said so);
- ``onnxruntime``: the ``.onnx`` beside the artifact, when onnxruntime is installed.

Inputs are the manifest's golden inputs, repeated or sliced along their shared
batch dim to each batch size. Per contender: load time, the first call after
load (at the first batch size and thread count), then for each thread count
and batch size p50/p90/p99 over every round's calls, throughput (samples/s at
p50) and the ratio of p50 to the first contender's (eager when present).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from torchport._report import text_table
from torchport.errors import BadInputError, BadOptionError, NativeUnavailableError
from torchport.manifest import Manifest, read_golden, read_manifest
from torchport.runtimes import REGISTRY, Loaded, check_names


@dataclass(frozen=True)
class Contender:
    """A bench contender: a runtime of the registry on a file of one format."""

    name: str
    runtime: str  # its runtime in torchport.runtimes.REGISTRY
    format: Optional[str] = None  # the format of the file it runs; None: the artifact's own
    sibling: bool = False  # an artifact of another format runs the file of this one beside it (same stem)
    cpp_loop: bool = False  # timed by the C++ runtime's own loop (NativeModel.benchmark), not from Python


CONTENDERS: dict[str, Contender] = {c.name: c for c in (
    Contender("eager", "eager"),
    Contender("torchscript", "torchscript", "torchscript"),
    Contender("native", "native"),
    Contender("native-cpp", "native", cpp_loop=True),
    Contender("aoti", "native", "aoti", sibling=True),
    Contender("executorch", "native", "executorch", sibling=True),
    Contender("onnxruntime", "onnxruntime", "onnx", sibling=True),
)}
RUNTIMES = tuple(CONTENDERS)


@dataclass
class BenchRow:
    runtime: str
    threads: int
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float  # samples per second at p50
    ratio: float  # p50 over the first contender's p50 at the same threads and batch


@dataclass
class BenchReport:
    artifact: str
    torch: str
    iters: int
    rounds: int
    load_ms: dict[str, float] = field(default_factory=dict)
    first_call_ms: dict[str, float] = field(default_factory=dict)
    rows: list[BenchRow] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # runtime -> why it did not run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write_json(self, path: Union[str, Path]) -> None:
        from torchport._files import write_bytes

        write_bytes(Path(path), json.dumps(self.to_dict(), indent=2).encode(), overwrite=True)

    def plot(self, path: Union[str, Path]) -> None:
        """A PNG bar chart of p50 per runtime, one group per (threads, batch)."""
        try:
            import matplotlib
        except ImportError as e:
            raise BadOptionError(f"plotting {path} needs matplotlib ({e}): pip install 'torchport[train]'") from None

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        groups = sorted({(r.threads, r.batch) for r in self.rows})
        runtimes = list(dict.fromkeys(r.runtime for r in self.rows))
        fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(groups) * max(1, len(runtimes)) / 2), 4))
        width = 0.8 / max(1, len(runtimes))
        for i, rt in enumerate(runtimes):
            p50 = {(r.threads, r.batch): r.p50_ms for r in self.rows if r.runtime == rt}
            ax.bar([g + i * width for g in range(len(groups))], [p50.get(k, 0.0) for k in groups], width, label=rt)
        ax.set_xticks([g + width * (len(runtimes) - 1) / 2 for g in range(len(groups))])
        ax.set_xticklabels([f"{t} thr, b={b}" for t, b in groups])
        ax.set_ylabel("p50 per call (ms)")
        ax.set_yscale("log")
        ax.set_title(f"torchport bench: {Path(self.artifact).name}")
        ax.legend(fontsize="small")
        fig.tight_layout()
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        from torchport._files import write_bytes

        write_bytes(Path(path), buf.getvalue(), overwrite=True)

    def __str__(self) -> str:
        lines = [f"bench {self.artifact} (torch {self.torch}; {self.rounds} alternating rounds of {self.iters} calls)"]
        head = ["runtime", "load ms", "first call ms"]
        lines += text_table(head, [[rt, f"{self.load_ms[rt]:.1f}", f"{self.first_call_ms[rt]:.3f}"]
                                   for rt in self.load_ms], indent="  ")
        lines.append("")
        head = ["threads", "batch", "runtime", "p50 ms", "p90 ms", "p99 ms", "samples/s", "ratio"]
        lines += text_table(head, [[r.threads, r.batch, r.runtime, f"{r.p50_ms:.4f}", f"{r.p90_ms:.4f}",
                                    f"{r.p99_ms:.4f}", f"{r.throughput:.0f}", f"{r.ratio:.3g}"] for r in self.rows],
                            indent="  ")
        lines += [f"  {rt}: not run ({why})" for rt, why in self.skipped.items()]
        return "\n".join(lines)


def _percentile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(round(q * (len(sorted_ms) - 1))))]


#: the most input bytes bench and tune build for one timed batch
MAX_BATCH_BYTES = 4 << 30


def shares_batch_dim(manifest: Manifest) -> bool:
    """Whether every input's first dim is the dynamic ``batch`` (then bench and tune may resize it)."""
    return all(s.shape is not None and len(s.shape) > 0 and s.shape[0] == "batch" for s in manifest.inputs)


def check_positive(**options: Any) -> None:
    """BadOptionError unless each option (named by its keyword) is a positive
    integer, or a non-empty list of them."""
    for what, value in options.items():
        if isinstance(value, Sequence) and not isinstance(value, str):
            if not value or any(not isinstance(v, int) or v < 1 for v in value):
                raise BadOptionError(f"{what}: expected positive integers, got {list(value)}")
        elif not isinstance(value, int) or value < 1:
            raise BadOptionError(f"{what}: expected a positive integer, got {value!r}")


def batched_inputs(golden: Sequence[torch.Tensor], batched: bool, batch: int) -> list[torch.Tensor]:
    """The golden inputs repeated or sliced along dim 0 to ``batch`` rows; a batch
    whose inputs would exceed MAX_BATCH_BYTES is refused before anything is allocated."""
    if not batched:
        return list(golden)
    if any(t.shape[0] == 0 for t in golden):
        raise BadOptionError("batch: the golden inputs hold no rows to repeat")
    need = sum(batch * (t.numel() // t.shape[0]) * t.element_size() for t in golden)
    if need > MAX_BATCH_BYTES:
        raise BadOptionError(f"batch: {batch} rows of the golden inputs need {need:,} bytes, more than the "
                             f"{MAX_BATCH_BYTES:,} a timed batch may take; choose a smaller batch")
    out = []
    for t in golden:
        reps = -(-batch // t.shape[0])
        out.append(t.repeat(reps, *([1] * (t.dim() - 1)))[:batch].contiguous())
    return out


def _timed_calls(fn: Callable[[], Any], iters: int) -> list[float]:
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def bench(
    artifact: Union[str, Path],
    *,
    batches: Sequence[int] = (1, 8, 32),
    threads: Sequence[int] = (1,),
    runtimes: Optional[Sequence[str]] = None,
    eager: Optional[Callable[[], Any]] = None,
    iters: int = 100,
    rounds: int = 3,
    warmup: int = 5,
) -> BenchReport:
    """Times every contender that applies (``RUNTIMES``, or those named in
    ``runtimes``) on ``artifact``'s golden inputs at each batch size and thread
    count; see the module docstring.

        >>> print(bench("model.pt", batches=[1, 32], eager=lambda: model))
    """
    _check_options(runtimes, batches, threads, iters, rounds, warmup)
    path = Path(artifact)
    manifest = read_manifest(path)  # the runtime's reader: refuses what it would not load
    golden, _ = read_golden(path)
    batched = shares_batch_dim(manifest)
    if not batched and any(b != golden[0].shape[0] for b in batches):
        raise BadOptionError(f"batch: '{path}' has no shared batch dim (inputs {[s.shape_str() for s in manifest.inputs]});"
                             " it runs only at its golden inputs' shapes")
    report = BenchReport(artifact=str(path), torch=torch.__version__, iters=iters, rounds=rounds)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads[0])
    try:
        timings = _load_contenders(report, _wanted(runtimes, eager), path, manifest, eager, threads[0],
                                   batched_inputs(golden, batched, batches[0]))
        for t in threads:
            torch.set_num_threads(t)
            for timing in timings.values():
                timing.use_threads(t)
            for b in batches:
                _time_batch(report, timings, t, b, batched_inputs(golden, batched, b), iters, rounds, warmup)
    finally:
        torch.set_num_threads(previous_threads)
    return report


def _check_options(runtimes: Optional[Sequence[str]], batches: Sequence[int], threads: Sequence[int], iters: int,
                   rounds: int, warmup: int) -> None:
    from torchport.native import load_native

    if runtimes is not None:
        check_names(runtimes, RUNTIMES)
    check_positive(batch=batches, threads=threads)
    for threads_value in threads:
        load_native().check_options(threads=threads_value)  # the runtime's rule for thread counts
    check_positive(iters=iters, rounds=rounds)
    if not isinstance(warmup, int) or warmup < 0:
        raise BadOptionError(f"warmup: expected an integer >= 0, got {warmup!r}")


def _wanted(runtimes: Optional[Sequence[str]], eager: Optional[Callable[[], Any]]) -> list[str]:
    """The contenders to try: those named, else all; eager only with its model."""
    wanted = list(runtimes) if runtimes is not None else list(RUNTIMES)
    if eager is None and "eager" in wanted:
        if runtimes is not None:
            raise BadOptionError("runtimes: 'eager' needs --checkpoint (the model the artifact was exported from)")
        wanted.remove("eager")
    return wanted


class _Skip(Exception):
    """A contender that does not apply here (no sibling file, not installed)."""


class _Timing:
    """One contender loaded, its calls timed from Python round by round."""

    def __init__(self, contender: Contender, loaded: Loaded, load: Callable[[Optional[int]], Loaded]) -> None:
        self.contender, self.loaded, self._load = contender, loaded, load
        self._call: Optional[Callable[[], Any]] = None  # the call on this batch's inputs (start())
        self.samples: list[float] = []

    def use_threads(self, threads: int) -> None:
        # A runtime with its own pool per session (ONNX Runtime) is loaded
        # again for each thread count; the others follow torch's pool.
        if self.loaded.runtime.own_pool and self.loaded.threads != threads:
            self.loaded = self._load(threads)

    def first_call(self, inputs: list[torch.Tensor]) -> float:
        call = self.loaded.call(inputs)
        with torch.inference_mode():  # every call runs in it, as a serving loop's would
            return _timed_calls(call, 1)[0]

    def start(self, inputs: list[torch.Tensor]) -> None:
        self._call, self.samples = self.loaded.call(inputs), []

    def round(self, iters: int, warmup: int) -> None:
        with torch.inference_mode():  # entered once per round, as a serving loop would
            _timed_calls(self._call, warmup)
            self.samples += _timed_calls(self._call, iters)

    def percentiles(self) -> tuple[float, float, float]:
        ms = sorted(self.samples)
        return _percentile(ms, 0.5), _percentile(ms, 0.9), _percentile(ms, 0.99)


class _CppLoop(_Timing):
    """``native-cpp``: the C++ runtime's own loop, which reports percentiles per round."""

    def first_call(self, inputs: list[torch.Tensor]) -> float:
        return self.loaded.model.benchmark(inputs, iters=1, warmup=0)["first_call_ms"]

    def start(self, inputs: list[torch.Tensor]) -> None:
        self.inputs, self.rounds = inputs, []

    def round(self, iters: int, warmup: int) -> None:
        self.rounds.append(self.loaded.model.benchmark(self.inputs, iters=iters, warmup=warmup))

    def percentiles(self) -> tuple[float, float, float]:
        # the median over rounds of each round's percentile
        p50, p90, p99 = (statistics.median(r[k] for r in self.rounds) for k in ("p50_ms", "p90_ms", "p99_ms"))
        return p50, p90, p99


def _file(contender: Contender, path: Path, fmt: str) -> Path:
    """The file the contender runs: the artifact, or its sibling of the contender's format."""
    if contender.format is None or contender.format == fmt:
        return path
    if not contender.sibling:
        raise _Skip(f"the artifact is {fmt}")
    from torchport.formats import SUFFIXES

    sibling = path.with_suffix(SUFFIXES[contender.format])
    if not sibling.is_file():
        raise _Skip(f"no {sibling.name} beside the artifact")
    return sibling


def _timing(contender: Contender, path: Path, manifest: Manifest, eager: Optional[Callable[[], Any]],
            threads: int) -> _Timing:
    """The contender loaded through the registry; _Skip when it does not apply here."""
    file = _file(contender, path, manifest.format or "torchscript")
    runtime = REGISTRY[contender.runtime]

    def load(count: Optional[int]) -> Loaded:
        model = eager() if runtime.kind == "model" else None
        return runtime.load(file, threads=count, manifest=manifest, model=model)

    try:
        # Only a runtime with its own pool takes a count; the others use torch's.
        loaded = load(threads if runtime.own_pool else None)
    except NativeUnavailableError as e:  # not installed
        raise _Skip(str(e).splitlines()[0]) from None
    return (_CppLoop if contender.cpp_loop else _Timing)(contender, loaded, load)


def _load_contenders(report: BenchReport, wanted: list[str], path: Path, manifest: Manifest,
                     eager: Optional[Callable[[], Any]], threads: int, inputs: list[torch.Tensor]
                     ) -> dict[str, _Timing]:
    """Each wanted contender loaded (its load time) and called once (its first call)."""
    timings: dict[str, _Timing] = {}
    for name in wanted:
        start = time.perf_counter()
        try:
            timing = _timing(CONTENDERS[name], path, manifest, eager, threads)
        except _Skip as why:
            report.skipped[name] = str(why)
            continue
        report.load_ms[name] = (time.perf_counter() - start) * 1e3
        report.first_call_ms[name] = timing.first_call(inputs)
        timings[name] = timing
    return timings


def _time_batch(report: BenchReport, timings: dict[str, _Timing], threads: int, batch: int,
                inputs: list[torch.Tensor], iters: int, rounds: int, warmup: int) -> None:
    """Alternating rounds of every contender at one thread count and batch; a row each."""
    for timing in timings.values():
        timing.start(inputs)
    active = list(timings)
    for _ in range(rounds):
        for name in list(active):
            try:
                timings[name].round(iters, warmup)
            except BadInputError as e:  # a shape the contender's file cannot take (a .pte's planned bound)
                report.skipped[f"{name} at batch {batch}"] = str(e).splitlines()[0]
                active.remove(name)
    base = None
    for name in active:
        p50, p90, p99 = timings[name].percentiles()
        base = base or p50
        report.rows.append(BenchRow(name, threads, batch, p50, p90, p99, batch * 1e3 / p50 if p50 else 0.0, p50 / base))
