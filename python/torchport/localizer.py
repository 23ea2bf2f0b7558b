"""When parity fails, say where: the first submodule whose output in the C++
runtime differs from eager's, given the same inputs, and why.

    >>> report = torchport.localize("model.pt", model=model)
    >>> print(report)                 # a table, then one sentence
    >>> report.first_divergence       # "features.3", or None when they agree

Method. The eager model runs once with forward hooks on every submodule,
recording each one's inputs and outputs (on the golden inputs by default).
Then the artifact's matching submodule runs in the chosen runtime on exactly
the inputs eager recorded, and its outputs are compared with eager's by the
runtime's own comparison (the one ``selfcheck`` uses). The search bisects by
depth: the model, then its top-level children in execution order; it descends
only into the first child that diverges, so a deep model costs a few passes.
A submodule that diverges on identical inputs, while none of its children
does, is where the divergence starts; its ancestors inherit it.

Known causes are checked on that submodule and named when they apply: a
different intra-op thread count between the runtimes (confirmed by a re-run
with eager's count), an optimisation level recorded in the manifest, custom
operators in its graph, non-deterministic kernels (two runs differ; on CUDA,
non-deterministic algorithms), and weights that differ from the eager model's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from torchport._report import text_table
from torchport.errors import BadOptionError, TorchportError
from torchport.manifest import Manifest, read_golden, read_manifest
from torchport.native import NativeModel, load_native
from torchport.runtimes import REGISTRY, Submodule, Submodules

#: the runtimes that run one submodule at a time
RUNTIMES = tuple(r.name for r in REGISTRY.values() if r.runs_submodules)
#: manifest metadata keys that may record an optimisation level at export
OPTIMIZE_KEYS = ("optimize", "optimization", "optimization_level", "optimize_level")
_NO_OPTIMIZATION = (None, False, 0, "0", "", "none", "O0", "off", "false")


# ---------------------------------------------------------------------------- report


@dataclass
class LocalizeRow:
    """One submodule run in the runtime on the inputs eager gave it."""

    name: str  # "" is the model itself
    type: str
    depth: int
    input_shapes: list[Optional[list[int]]]
    output_shapes: list[list[int]]
    max_abs_diff: Optional[float]  # None: not compared (error, not in the artifact) or shapes differ
    max_rel_diff: Optional[float]
    bit_exact: bool
    ok: bool
    status: str  # "agrees", "diverges", "not in artifact", "error"
    starts_here: Optional[bool] = None  # for "diverges": True where it starts, False when inherited
    note: str = ""


@dataclass
class Cause:
    """A known cause of divergence that applies to the first divergent submodule."""

    kind: str  # "threads", "optimize", "custom_op", "nondeterministic", "cuda", "weights", "unknown"
    message: str  # what was found and what it means
    confirmed: bool  # checked by a re-run or a direct comparison, not only suspected
    short: str = ""  # the few words the closing sentence uses


@dataclass
class LocalizeReport:
    """The rows visited, the first divergence and its likely causes.

    ``first_divergence`` is the qualified name of the submodule where the
    divergence starts ("" for the model's own code), or None when the runtime
    agrees with eager everywhere it looked.
    """

    artifact: str
    runtime: str
    reference: str
    atol: float
    rtol: float
    threads: int  # the runtime's intra-op threads
    eager_threads: int
    rows: list[LocalizeRow] = field(default_factory=list)
    first_divergence: Optional[str] = None
    causes: list[Cause] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    runs: int = 0  # submodule calls in the runtime
    passes: int = 0  # depths visited
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when nothing diverged and nothing failed."""
        return self.first_divergence is None and all(r.status in ("agrees", "not in artifact") for r in self.rows)

    @property
    def divergent_row(self) -> Optional[LocalizeRow]:
        if self.first_divergence is None:
            return None
        return next(r for r in self.rows if r.name == self.first_divergence and r.status == "diverges")

    def summary(self) -> str:
        """The closing sentence."""
        errors = [r for r in self.rows if r.status == "error"]
        row = self.divergent_row
        if row is None:
            agreeing = [r for r in self.rows if r.status == "agrees"]
            exact = all(r.bit_exact for r in agreeing)
            how = "bit-exact" if exact else f"within atol={self.atol:g}, rtol={self.rtol:g}"
            text = (
                f"no divergence: the model and {len(agreeing) - 1} submodule(s) agree with {self.reference} ({how}) "
                f"in the {self.runtime} runtime"
            )
            if errors:
                text += f"; {len(errors)} could not be run: " + "; ".join(f"`{r.name}`: {r.note}" for r in errors)
            return text
        where = "the model's own code" if row.name == "" else f"`{row.name}`"
        inner = " (none of its submodules diverges on its own inputs)" if row.note.startswith("its submodules") else ""
        likely = "; ".join(c.short or c.message for c in self.causes) or "unknown"
        return (
            f"first divergence: {where} ({row.type}){inner}, max abs diff {_num(row.max_abs_diff)}, "
            f"inputs identical; likely cause: {likely}"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["summary"] = self.summary()
        for r in d["rows"]:
            for k in ("max_abs_diff", "max_rel_diff"):
                if r[k] is not None and (r[k] != r[k] or r[k] in (float("inf"), float("-inf"))):
                    r[k] = None
        return d

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        head = ("submodule", "type", "inputs", "outputs", "max abs diff", "max rel diff", "result")
        body = []
        for r in self.rows:
            if r.status == "diverges":
                result = "DIVERGES: starts here" if r.starts_here else "diverges: inherited"
            elif r.status == "agrees":
                result = "bit-exact" if r.bit_exact else "within tolerance"
            else:
                result = r.status
            body.append(
                (
                    "  " * r.depth + (r.name or "(model)"),
                    r.type,
                    _shapes(r.input_shapes),
                    _shapes(r.output_shapes),
                    _num(r.max_abs_diff),
                    _num(r.max_rel_diff),
                    result,
                )
            )
        out = [
            f"localize {self.artifact} in the {self.runtime} runtime against {self.reference} "
            f"(atol={self.atol:g}, rtol={self.rtol:g}, threads: runtime {self.threads}, eager {self.eager_threads}; "
            f"{self.runs} submodule runs in {self.passes} passes, {self.seconds:.2f} s)",
            *text_table(head, body),
        ]
        out += [f"  {r.name or '(model)'}: {r.note}" for r in self.rows if r.note]
        for c in self.causes:
            out.append(f"cause ({c.kind}, {'confirmed' if c.confirmed else 'suspected'}): {c.message}")
        out.append(self.summary())
        return "\n".join(out)


def _num(x: Optional[float]) -> str:
    if x is None or x != x or x == float("inf"):
        return "-"
    return "0" if x == 0 else f"{x:.2g}"


def _shapes(shapes: list) -> str:
    if not shapes:
        return "-"
    return " ".join("-" if s is None else "[" + ",".join(map(str, s)) + "]" for s in shapes)


# ---------------------------------------------------------------------------- values


def flatten(value: Any, what: str) -> list[torch.Tensor]:
    """The tensors in a value, depth first, None skipped: the rule
    ``torchport::flatten_tensors`` applies in C++ (the binary's outputs)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if value is None:
        return []
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in flatten(item, what)]
    if isinstance(value, Mapping):
        return [t for item in value.values() for t in flatten(item, what)]
    raise BadOptionError(f"{what} holds a {type(value).__name__}; expected tensors in tuples, lists or dicts")


def _clone(value: Any, memo: Optional[dict[int, torch.Tensor]] = None) -> Any:
    """A deep copy of the tensors in a value; a tensor passed twice stays one
    tensor (a traced graph takes it once)."""
    memo = {} if memo is None else memo
    if isinstance(value, torch.Tensor):
        if id(value) not in memo:
            memo[id(value)] = value.detach().clone()
        return memo[id(value)]
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple: TorchScript sees a tuple
        return tuple(_clone(v, memo) for v in value)
    if isinstance(value, (tuple, list)):
        return type(value)(_clone(v, memo) for v in value)
    if isinstance(value, Mapping):
        return {k: _clone(v, memo) for k, v in value.items()}
    return value


def _traced_arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[torch.Tensor]:
    """What a traced submodule's forward() takes: its tensor arguments flattened,
    each distinct tensor once, in order (other values are constants in its graph)."""
    out: list[torch.Tensor] = []

    def walk(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            if not any(t is value for t in out):
                out.append(value)
        elif isinstance(value, (tuple, list)):
            for v in value:
                walk(v)
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)

    walk(list(args) + list(kwargs.values()))
    return out


def _input_shapes(values: Sequence[Any]) -> list[Optional[list[int]]]:
    """Shapes of the tensors among a submodule's arguments; None for other values."""
    out: list[Optional[list[int]]] = []
    for v in values:
        if isinstance(v, torch.Tensor):
            out.append(list(v.shape))
        elif isinstance(v, (tuple, list)):
            out += _input_shapes(v)
        elif isinstance(v, Mapping):
            out += _input_shapes(list(v.values()))
        else:
            out.append(None)
    return out


# ---------------------------------------------------------------------------- eager


@dataclass
class _Record:
    name: str
    module: torch.nn.Module
    order: int
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    output: Any = None
    done: bool = False
    calls: int = 0


def _record(model: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> dict[str, _Record]:
    """Every submodule's first call: its inputs (as they came in, before any
    in-place change) and its outputs, keyed by qualified name ("" is the model)."""
    records: dict[str, _Record] = {}
    handles = []

    def pre(name: str):
        def hook(module, args, kwargs):
            rec = records.get(name)
            if rec is None:
                memo: dict[int, torch.Tensor] = {}
                records[name] = _Record(name, module, len(records), _clone(args, memo), _clone(kwargs, memo), calls=1)
            else:
                rec.calls += 1

        return hook

    def post(name: str):
        def hook(module, args, kwargs, output):
            rec = records[name]
            if not rec.done:
                rec.output, rec.done = _clone(output), True

        return hook

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(pre(name), with_kwargs=True))
        handles.append(module.register_forward_hook(post(name), with_kwargs=True))
    try:
        with torch.inference_mode():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return records


def _children(records: dict[str, _Record]) -> dict[str, list[str]]:
    """Called submodules under their nearest called ancestor, in execution order
    (a ModuleList is never called itself; its items hang under its owner)."""
    tree: dict[str, list[str]] = {name: [] for name in records}
    for name in sorted(records, key=lambda n: records[n].order):
        if name == "":
            continue
        parent = name
        while True:
            parent = parent.rpartition(".")[0]
            if parent in records:
                break
        tree[parent].append(name)
    return tree


# ---------------------------------------------------------------------------- the search


def _compare(expected: list[torch.Tensor], got: list[torch.Tensor], atol: float, rtol: float, prefix: str):
    """The runtime's own comparison (torchport::compare_outputs), folded to one verdict."""
    names = [f"{prefix}.{i}" if len(expected) > 1 else prefix for i in range(len(expected))]
    rows = load_native().compare_outputs(names, [t.cpu() for t in expected], [t.cpu() for t in got], atol=atol,
                                         rtol=rtol)
    return rows


def _to_device(value: Any, device: str, memo: Optional[dict[int, torch.Tensor]] = None) -> Any:
    """The value with its tensors on ``device``; a tensor passed twice stays one."""
    memo = {} if memo is None else memo
    if isinstance(value, torch.Tensor):
        if id(value) not in memo:
            memo[id(value)] = value.to(device)
        return memo[id(value)]
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return tuple(_to_device(v, device, memo) for v in value)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(v, device, memo) for v in value)
    if isinstance(value, Mapping):
        return {k: _to_device(v, device, memo) for k, v in value.items()}
    return value


class _Search:
    def __init__(self, records, runner: Submodules, subs: dict[str, Submodule], atol, rtol, device, traced: bool
                 ) -> None:
        self.records, self.runner, self.subs, self.traced = records, runner, subs, traced
        self.atol, self.rtol, self.device = atol, rtol, device
        self.runs = 0
        self.last_output: dict[str, Any] = {}
        self.prefetched: dict[str, Any] = {}

    def type_of(self, name: str) -> str:
        return type(self.records[name].module).__name__

    def _call(self, name: str) -> tuple[str, list, dict]:
        rec = self.records[name]
        args, kwargs = _to_device((rec.args, rec.kwargs), self.device)
        if self.traced and name:
            # A traced submodule's forward() was recorded with its tensors only.
            return name, _traced_arguments(args, kwargs), {}
        return name, list(args), dict(kwargs)

    def prefetch(self, names: list[str]) -> None:
        """Lets a runtime that batches (the binary) run a whole pass at once."""
        calls = [self._call(n) for n in names if not n or (n in self.subs and self.subs[n].callable)]
        done = self.runner.run_submodules(calls)
        self.runs += len(done)
        self.prefetched.update(done)

    def run(self, name: str) -> Any:
        if name in self.prefetched:
            result = self.prefetched.pop(name)
            if isinstance(result, Exception):
                raise result
            return result
        self.runs += 1
        return self.runner.run_submodule(*self._call(name))

    def row(self, name: str, depth: int) -> LocalizeRow:
        rec = self.records[name]
        expected = flatten(rec.output, f"the eager output of '{name}'")
        row = LocalizeRow(
            name, self.type_of(name), depth,
            _input_shapes(list(rec.args) + list(rec.kwargs.values())), [list(t.shape) for t in expected],
            None, None, False, False, "error",
        )
        if rec.calls > 1:
            row.note = f"called {rec.calls} times in eager; its first call is compared"
        if self.traced and name and len(_traced_arguments(rec.args, rec.kwargs)) != len(rec.args) + len(rec.kwargs):
            row.note = (row.note + "; " if row.note else "") + (
                "traced: called with its distinct tensor arguments only (the others are constants in its graph)"
            )
        sub = self.subs.get(name) if name else Submodule(row.type, True, [])
        if name and (sub is None or not sub.callable):
            row.status = "not in artifact"
            row.note = (
                "not in the artifact (optimised away or inlined)" if sub is None
                else "in the artifact without a forward() of its own (a traced model keeps only what the trace called)"
            )
            return row
        try:
            got = self.run(name)
            self.last_output[name] = got
            rows = _compare(expected, flatten(got, f"the output of '{name}'"), self.atol, self.rtol, name or "output")
        except Exception as e:  # noqa: BLE001 - a submodule that fails is a row, not a crash
            row.note = f"{type(e).__name__}: {e}"
            return row
        worst = max(rows, key=lambda c: c.max_abs_diff) if rows else None
        row.max_abs_diff = worst.max_abs_diff if worst else 0.0
        row.max_rel_diff = max(c.max_rel_diff for c in rows) if rows else 0.0
        row.bit_exact = all(c.bit_exact for c in rows)
        row.ok = all(c.ok for c in rows)
        bad_shape = [c for c in rows if c.got_shape != c.expected_shape or c.got_dtype != c.expected_dtype]
        if bad_shape:
            c = bad_shape[0]
            row.note = (row.note + "; " if row.note else "") + (
                f"output {c.output}: expected {c.expected_dtype}{c.expected_shape}, got {c.got_dtype}{c.got_shape}"
            )
        row.status = "agrees" if row.ok else "diverges"
        return row


def localize(
    path: Union[str, Path],
    *,
    model: torch.nn.Module,
    inputs: Any = None,
    runtime: str = "native",
    atol: float = 0.0,
    rtol: float = 0.0,
    threads: Optional[int] = None,
    libraries: Optional[Sequence[Union[str, Path]]] = None,
    device: str = "cpu",
) -> LocalizeReport:
    """Names the first submodule, in execution order, whose output in ``runtime``
    differs from eager's beyond ``atol``/``rtol`` on the same inputs, and why.

    ``inputs`` default to the artifact's golden inputs. Eager runs with torch's
    current intra-op thread count; the runtime with ``threads`` (default: the
    same). ``libraries`` are custom operator libraries the artifact needs.

        >>> report = localize("model.pt", model=model)
        >>> report.first_divergence, [c.kind for c in report.causes]
        ('features.3', ['custom_op'])
    """
    if runtime not in RUNTIMES:
        raise BadOptionError(f"runtime: expected one of {RUNTIMES}, got {runtime!r}")
    if not isinstance(model, torch.nn.Module):
        raise BadOptionError(f"model: expected the eager torch.nn.Module, got {type(model).__name__}")
    if threads is not None and threads < 1:
        raise BadOptionError(f"threads: expected 1 or more, got {threads}")
    start = time.perf_counter()
    manifest = read_manifest(path)
    libs = [str(p) for p in libraries or ()]
    if inputs is None:
        tensors, _ = read_golden(path)
        reference = "eager on the golden inputs"
    else:
        reference = "eager"
        if isinstance(inputs, torch.Tensor):
            tensors = [inputs]
        elif isinstance(inputs, Mapping):  # by name: the runtime's ordering rule
            tensors = NativeModel(path, libraries=libs).order_inputs(inputs)
        else:
            tensors = list(inputs)
    tensors = [t.to(device) for t in tensors]
    eager_threads = torch.get_num_threads()
    run_threads = threads or eager_threads

    model.eval()
    records = _record(model, tensors)
    tree = _children(records)
    report = LocalizeReport(str(path), runtime, reference, atol, rtol, run_threads, eager_threads)
    try:
        runner = REGISTRY[runtime].load(path, threads=run_threads, libraries=libs, device=device)
        runner.set_threads(run_threads)
        search = _Search(records, runner, runner.submodules(), atol, rtol, device,
                         traced=manifest.export_method == "trace")
        _bisect(search, tree, report)
        report.runs = search.runs
        if report.first_divergence is not None:
            _causes(search, report, manifest, eager_threads, device)
            report.runs = search.runs
    finally:
        torch.set_num_threads(eager_threads)
    report.seconds = time.perf_counter() - start
    return report


def _bisect(search: _Search, tree: dict[str, list[str]], report: LocalizeReport) -> None:
    search.prefetch(["", *tree.get("", [])])  # the model and its top-level children: one binary process
    root = search.row("", 0)
    report.rows.append(root)
    report.passes = 1
    chain = [root] if root.status == "diverges" else []
    current, depth = "", 1
    while tree.get(current):
        report.passes += 1
        if current:
            search.prefetch(tree[current])
        found = None
        for child in tree[current]:
            row = search.row(child, depth)
            report.rows.append(row)
            if row.status == "diverges":
                found = row
                break
        if found is None:
            break
        chain.append(found)
        current, depth = found.name, depth + 1
    if not chain:
        return
    # The deepest divergent row is where it starts; the ones above inherit it.
    origin = chain[-1]
    for row in chain:
        row.starts_here = row is origin
    if tree.get(origin.name) and not origin.note:
        runnable = [r for r in report.rows if r.depth == origin.depth + 1 and r.status != "not in artifact"]
        origin.note = (
            "its submodules agree on their own inputs: the divergence is in its own code between them"
            if runnable
            else "its submodules cannot be run on their own in this artifact; the divergence is within it"
        )
    report.first_divergence = origin.name


def _cause_nondeterminism(search: _Search, report: LocalizeReport, name: str, got, device: str) -> None:
    runner = search.runner
    # Repeatability: the runtime against itself.
    report.checked.append("nondeterministic")
    again = flatten(search.run(name), name)
    self_rows = _compare(got, again, 0.0, 0.0, name or "output")
    if not all(c.bit_exact for c in self_rows):
        kind = "cuda" if device.startswith("cuda") else "nondeterministic"
        report.causes.append(Cause(kind, (
            f"two runs of `{name or '(model)'}` in the {runner.runtime.name} runtime differ from each other "
            f"(max abs diff {_num(max(c.max_abs_diff for c in self_rows))}): non-deterministic kernels"
            + (" on CUDA; set torch.use_deterministic_algorithms(True) and torch.backends.cudnn.benchmark = False"
               if kind == "cuda" else "")
        ), True, "non-deterministic kernels (two runs in the runtime differ)"))
    elif device.startswith("cuda"):
        report.causes.append(Cause("cuda", (
            "on CUDA the runtime may pick other kernels than eager (cuDNN algorithm choice, TF32); compare with "
            "torch.use_deterministic_algorithms(True) and torch.backends.cudnn.benchmark = False on both sides"
        ), False, "CUDA kernel choice (cuDNN, TF32)"))
    report.checked.append("cuda")


def _cause_threads(search: _Search, report: LocalizeReport, name: str, expected, eager_threads: int) -> None:
    runner, row = search.runner, report.divergent_row
    # Thread counts: re-run with eager's count; agreement then confirms it.
    report.checked.append("threads")
    if runner.threads != eager_threads:
        used = runner.threads
        runner.set_threads(eager_threads)
        try:
            same_threads = flatten(search.run(name), name)
        finally:
            runner.set_threads(used)
        if all(c.ok for c in _compare(expected, same_threads, report.atol, report.rtol, name or "output")):
            report.causes.append(Cause("threads", (
                f"intra-op threads differ: the runtime ran with {used}, eager with {eager_threads}, so reductions "
                f"are split differently; with {eager_threads} threads the runtime agrees"
            ), True, f"intra-op threads ({used} in the runtime, {eager_threads} in eager)"))
        else:
            row.note = (row.note + "; " if row.note else "") + (
                f"the runtime ran with {used} threads, eager with {eager_threads}; with {eager_threads} it still "
                "differs, so the thread count is not the cause"
            )


def _cause_optimize(report: LocalizeReport, manifest: Manifest) -> None:
    # An optimisation level recorded at export.
    report.checked.append("optimize")
    for key in OPTIMIZE_KEYS:
        level = manifest.metadata.get(key)
        if key in manifest.metadata and level not in _NO_OPTIMIZATION:
            report.causes.append(Cause("optimize", (
                f"the manifest records {key}={json.dumps(level)}: the graph was optimised at export (for example "
                "batch norm folded into the convolution before it), which rounds differently from eager"
            ), True, f"optimisation at export ({key}={json.dumps(level)})"))
            break


def _cause_custom_op(search: _Search, report: LocalizeReport, name: str) -> None:
    row = report.divergent_row
    # Custom operators in its graph (callees included).
    report.checked.append("custom_op")
    # A submodule's list covers its callees; the model itself is not listed, so
    # for it every submodule's ops count.
    subs = search.subs
    ops = sorted(subs[name].custom_ops if name in subs else {op for s in subs.values() for op in s.custom_ops})
    if ops and row.starts_here:
        report.causes.append(Cause("custom_op", (
            f"`{name or '(model)'}` calls {', '.join(ops)} from a custom operator library: the library's C++ kernel "
            "runs here, not the eager model's Python code; compare the kernel with its Python reference"
        ), True, f"custom operator {', '.join(ops)} (a library kernel, not eager's code)"))


def _cause_weights(search: _Search, report: LocalizeReport, name: str) -> None:
    runner, rec = search.runner, search.records[name]
    # Weights: the artifact's tensors against the eager model's.
    report.checked.append("weights")
    try:
        mine = runner.submodule_tensors(name)
        theirs = {k: v for k, v in rec.module.state_dict().items() if isinstance(v, torch.Tensor)}
        shared = sorted(set(mine) & set(theirs))
        if shared:
            diffs = _compare([theirs[k] for k in shared], [mine[k] for k in shared], 0.0, 0.0, "w")
            changed = [(k, c) for k, c in zip(shared, diffs) if not c.bit_exact]
            if changed:
                k, c = changed[0]
                full = f"{name}.{k}" if name else k
                report.causes.append(Cause("weights", (
                    f"the artifact's `{full}` differs from the eager model's (max abs diff {_num(c.max_abs_diff)}"
                    + (f"; {len(changed)} tensors differ" if len(changed) > 1 else "")
                    + "): it holds other weights, edited after export or exported from another checkpoint"
                ), True, f"its weights differ from eager's (`{full}`)"))
    except TorchportError:
        pass  # a backend that cannot read submodule tensors: nothing to compare


def _causes(search: _Search, report: LocalizeReport, manifest: Manifest, eager_threads: int, device: str) -> None:
    name = report.first_divergence
    expected = flatten(search.records[name].output, name)
    got = flatten(search.last_output[name], name)
    _cause_nondeterminism(search, report, name, got, device)
    _cause_threads(search, report, name, expected, eager_threads)
    _cause_optimize(report, manifest)
    _cause_custom_op(search, report, name)
    _cause_weights(search, report, name)

    if not report.causes:
        report.causes.append(Cause("unknown", (
            "none of the known causes applies (threads, optimisation level, custom operators, non-determinism, "
            "weights): the artifact's code for this submodule computes differently from eager (another CPU's "
            "SIMD kernels, another LibTorch build, or a scripting/tracing bug)"
        ), False, "none of the known ones (its code or kernels compute differently)"))
