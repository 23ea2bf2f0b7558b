"""``torchport bench``: the runtimes that can run an artifact, side by side in
one process, with the same inputs and thread settings, in alternating rounds.

    >>> report = bench("model.pt", batches=[1, 32], threads=[1])
    >>> print(report)
    >>> report.write_json("bench.json"); report.plot("bench.png")

Contenders (``RUNTIMES``), those that apply to the artifact:

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
from torchport.errors import BadInputError, BadOptionError
from torchport.manifest import read_golden, read_manifest

RUNTIMES = ("eager", "torchscript", "native", "native-cpp", "aoti", "executorch", "onnxruntime")


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
    from torchport.native import NativeModel, load_native

    if runtimes is not None:
        unknown = set(runtimes) - set(RUNTIMES)
        if unknown:
            raise BadOptionError(f"runtimes: unknown {sorted(unknown)}; choose from {RUNTIMES}")
    for what, values in (("batch", batches), ("threads", threads)):
        if not values or any(not isinstance(v, int) or v < 1 for v in values):
            raise BadOptionError(f"{what}: expected positive integers, got {list(values)}")
    for threads_value in threads:
        load_native().check_options(threads=threads_value)  # the runtime's rule for thread counts
    for what, value in (("iters", iters), ("rounds", rounds)):
        if not isinstance(value, int) or value < 1:
            raise BadOptionError(f"{what}: expected a positive integer, got {value!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise BadOptionError(f"warmup: expected an integer >= 0, got {warmup!r}")
    path = Path(artifact)
    manifest = read_manifest(path)  # the runtime's reader: refuses what it would not load
    golden, _ = read_golden(path)
    batched = all(s.shape is not None and len(s.shape) > 0 and s.shape[0] == "batch" for s in manifest.inputs)
    if not batched and any(b != golden[0].shape[0] for b in batches):
        raise BadOptionError(f"batch: '{path}' has no shared batch dim (inputs {[s.shape_str() for s in manifest.inputs]});"
                             " it runs only at its golden inputs' shapes")
    wanted = list(runtimes) if runtimes is not None else list(RUNTIMES)
    if eager is None and "eager" in wanted:
        if runtimes is not None:
            raise BadOptionError("runtimes: 'eager' needs --checkpoint (the model the artifact was exported from)")
        wanted.remove("eager")
    fmt = manifest.format or "torchscript"
    report = BenchReport(artifact=str(path), torch=torch.__version__, iters=iters, rounds=rounds)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads[0])
    callers: dict[str, Callable[[list[torch.Tensor]], Callable[[], Any]]] = {}
    cpp_loop: Optional[Any] = None
    try:
        for rt in wanted:
            start = time.perf_counter()
            try:
                caller = _load(rt, path, fmt, eager, threads[0])
            except _Skip as why:
                report.skipped[rt] = str(why)
                continue
            report.load_ms[rt] = (time.perf_counter() - start) * 1e3
            if rt == "native-cpp":
                cpp_loop = caller
                report.first_call_ms[rt] = caller.benchmark(batched_inputs(golden, batched, batches[0]),
                                                            iters=1, warmup=0)["first_call_ms"]
                continue
            call = caller(batched_inputs(golden, batched, batches[0]))
            with torch.inference_mode():  # every call runs in it, as a serving loop's would
                report.first_call_ms[rt] = _timed_calls(call, 1)[0]
            callers[rt] = caller
        for t in threads:
            torch.set_num_threads(t)
            if "onnxruntime" in callers and t != threads[0]:  # ONNX Runtime keeps its own pool per session
                callers["onnxruntime"] = _load("onnxruntime", path, fmt, checkpoint, t)
            for b in batches:
                inputs = batched_inputs(golden, batched, b)
                calls = {rt: make(inputs) for rt, make in callers.items()}
                samples: dict[str, list[float]] = {rt: [] for rt in report.load_ms}
                cpp_rounds: list[dict[str, float]] = []  # the C++ loop reports percentiles per round
                active = list(report.load_ms)
                for _ in range(rounds):
                    for rt in list(active):
                        try:
                            if rt == "native-cpp":
                                cpp_rounds.append(cpp_loop.benchmark(inputs, iters=iters, warmup=warmup))
                                continue
                            with torch.inference_mode():  # entered once per round, as a serving loop would
                                _timed_calls(calls[rt], warmup)
                                samples[rt] += _timed_calls(calls[rt], iters)
                        except BadInputError as e:  # a shape the contender's file cannot take (a .pte's planned bound)
                            report.skipped[f"{rt} at batch {b}"] = str(e).splitlines()[0]
                            active.remove(rt)
                base = None
                for rt in active:
                    if rt == "native-cpp":  # the median over rounds of each round's percentile
                        p50, p90, p99 = (statistics.median(r[k] for r in cpp_rounds)
                                         for k in ("p50_ms", "p90_ms", "p99_ms"))
                    else:
                        ms = sorted(samples[rt])
                        p50, p90, p99 = (_percentile(ms, q) for q in (0.5, 0.9, 0.99))
                    base = base or p50
                    report.rows.append(BenchRow(rt, t, b, p50, p90, p99, b * 1e3 / p50 if p50 else 0.0, p50 / base))
    finally:
        torch.set_num_threads(previous_threads)
    return report


class _Skip(Exception):
    """A contender that does not apply here (no sibling file, not installed)."""


def _load(rt: str, path: Path, fmt: str, eager, threads: int):
    """The contender loaded: a function from inputs to a no-argument call (or,
    for native-cpp, the bound model whose ``benchmark`` times a C++ loop)."""
    from torchport.native import NativeModel

    if rt == "eager":
        model = eager().eval()
        # The call alone, as the torchscript contender's: flattening the outputs
        # (through the runtime's describe_outputs) is not the model's time.
        return lambda inputs: (lambda: model(*inputs))
    if rt == "torchscript":
        if fmt != "torchscript":
            raise _Skip(f"the artifact is {fmt}")
        from torchport._warnings import jit as _jit

        module = _jit(torch.jit.load, str(path), map_location="cpu")
        return lambda inputs: (lambda: module(*inputs))
    if rt in ("native", "native-cpp"):
        model = NativeModel(path)
        return model if rt == "native-cpp" else (lambda inputs: (lambda: model.run(*inputs)))
    if rt in ("aoti", "executorch"):
        sibling = path if fmt == rt else path.with_suffix(".pt2" if rt == "aoti" else ".pte")
        if not sibling.is_file():
            raise _Skip(f"no {sibling.name} beside the artifact")
        model = NativeModel(sibling)
        return lambda inputs: (lambda: model.run(*inputs))
    if rt == "onnxruntime":
        sibling = path if fmt == "onnx" else path.with_suffix(".onnx")
        if not sibling.is_file():
            raise _Skip(f"no {sibling.name} beside the artifact")
        try:
            from torchport.formats import onnxruntime_session, run_onnxruntime

            session = onnxruntime_session(sibling, threads)
        except Exception as e:  # noqa: BLE001 - not installed, or a model it cannot read
            raise _Skip(str(e).splitlines()[0]) from None
        return lambda inputs: (lambda: run_onnxruntime(session, inputs))
    raise AssertionError(rt)
