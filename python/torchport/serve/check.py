"""``check_triton``: a Triton model folder checked without a server: its layout against the
repository rules, and the golden request served as the PyTorch backend would, through
torchport's C++ runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from torchport._report import RowVerdict, text_table
from torchport.comparison import compare
from torchport.errors import BadArtifactError, BadOptionError
from torchport.manifest import read_manifest
from torchport.serve.config import BACKEND, CONFIG_FILE, MODEL_FILE, PLATFORM, TORCH_DTYPES, config_from_manifest
from torchport.serve.forward import forward_arguments
from torchport.serve.repository import _versions
from torchport.serve.schema import _io_differences, model_config_schema, parse_config


@dataclass
class TritonCheckRow:
    version: int
    output: str  # the config's name
    shape: list[int]
    dtype: str
    requests: int
    max_abs_diff: float
    bit_exact: bool
    ok: bool  # bit-exact, or within the check's atol/rtol


@dataclass
class TritonCheck(RowVerdict):
    """``check_triton``'s findings: the layout and the config were valid (or it raised),
    and each version's outputs for the golden request."""

    model_dir: Path
    max_batch_size: int
    versions: list[int]
    input_names: list[str]
    output_names: list[str]
    rows: list[TritonCheckRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    atol: float = 0.0
    rtol: float = 0.0

    def __str__(self) -> str:
        lines = [
            f"{self.model_dir}: config.pbtxt parses against Triton's ModelConfig; layout ok; "
            f"versions {self.versions}; max_batch_size {self.max_batch_size}",
            f"  inputs {self.input_names}  outputs {self.output_names}",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        header = ("version", "output", "shape", "dtype", "requests", "max abs diff", "bit-exact", "ok")
        lines += text_table(header, [
            (str(r.version), r.output, str(r.shape), r.dtype, str(r.requests), f"{r.max_abs_diff:.3g}",
             "yes" if r.bit_exact else "no", "ok" if r.ok else "MISMATCH")
            for r in self.rows
        ], indent="  ")
        if self.bit_exact:
            lines.append("result: golden outputs reproduced bit for bit")
        elif self.ok:
            lines.append(f"result: golden outputs reproduced within atol={self.atol:g}, rtol={self.rtol:g}")
        else:
            lines.append(f"result: MISMATCH (atol={self.atol:g}, rtol={self.rtol:g})")
        return "\n".join(lines)


def _named_index(name: str) -> Optional[int]:
    """The index in ``<name>__<index>`` as the PyTorch backend reads it (the text after
    the first ``__``, all digits), or None when the name does not follow the convention."""
    start = name.find("__")
    if start < 0 or not name[start + 2:].isdigit():
        return None
    return int(name[start + 2:])


def _positions(names: list[str], forward_args: Optional[list[str]]) -> list[int]:
    """Which model argument (or output) each config name reaches, as the PyTorch backend
    decides: forward's argument names (inputs only), else <name>__<index> for all, else
    the config's order."""
    if forward_args is not None and all(n in forward_args for n in names):
        return [forward_args.index(n) for n in names]
    indices = [_named_index(n) for n in names]
    if all(i is not None for i in indices):
        return indices  # type: ignore[return-value]
    return list(range(len(names)))


def _dims_fit(shape: Sequence[int], dims: Sequence[int]) -> bool:
    return len(shape) == len(dims) and all(d == -1 or d == s for s, d in zip(shape, dims))


def check_layout(model_dir: Union[str, Path]) -> tuple[Any, dict[int, Path], list[str]]:
    """The parsed config, the version files and notes, after checking the folder against
    Triton's repository rules and the PyTorch backend's config rules. Raises
    BadArtifactError listing every problem found."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise BadArtifactError(f"'{model_dir}' is not a folder; expected REPO/NAME holding {CONFIG_FILE} and version folders")
    config = parse_config(model_dir / CONFIG_FILE)
    problems, notes = [], []
    if config.name and config.name != model_dir.name:
        problems.append(f"config name '{config.name}' differs from its folder '{model_dir.name}' (Triton requires them equal)")
    if config.platform not in ("", PLATFORM) or config.backend not in ("", BACKEND) or not (config.platform or config.backend):
        problems.append(
            f"platform '{config.platform}' / backend '{config.backend}': expected platform \"{PLATFORM}\" "
            f"or backend \"{BACKEND}\" (Triton's PyTorch backend, TorchScript)"
        )
    if config.max_batch_size < 0:
        problems.append(f"max_batch_size {config.max_batch_size}: expected >= 0")
    if config.HasField("dynamic_batching") and config.max_batch_size == 0:
        problems.append("dynamic_batching needs max_batch_size > 0")
    DataType = config.DESCRIPTOR.file.enum_types_by_name["DataType"]
    for key in ("input", "output"):
        tensors = list(getattr(config, key))
        if not tensors:
            problems.append(f"no {key}s: the PyTorch backend needs at least one")
        names = [t.name for t in tensors]
        if len(set(names)) != len(names):
            problems.append(f"{key} names repeat: {names}")
        for t in tensors:
            type_name = DataType.values_by_number[t.data_type].name
            if type_name not in TORCH_DTYPES:
                problems.append(f"{key} '{t.name}': data_type {type_name} is not one the PyTorch backend converts "
                                f"({', '.join(TORCH_DTYPES)})")
            if not t.dims:
                problems.append(f"{key} '{t.name}': empty dims (Triton wants rank >= 1; use dims [1] with reshape {{ shape: [] }})")
            if any(d < -1 or d == 0 for d in t.dims):
                problems.append(f"{key} '{t.name}': dims {list(t.dims)} may hold positive sizes or -1")
            if t.HasField("reshape") and -1 not in t.dims and -1 not in t.reshape.shape:
                if _numel(t.dims) != _numel(t.reshape.shape):
                    problems.append(f"{key} '{t.name}': reshape {list(t.reshape.shape)} holds {_numel(t.reshape.shape)} "
                                    f"elements, dims {list(t.dims)} {_numel(t.dims)}")
            if key == "output" and t.label_filename:
                label = model_dir / t.label_filename
                if not label.is_file():
                    problems.append(f"output '{t.name}': label file '{label}' is missing")
                elif t.dims and t.dims[-1] != -1 and len(label.read_text().splitlines()) != t.dims[-1]:
                    problems.append(f"output '{t.name}': '{label}' has {len(label.read_text().splitlines())} labels, "
                                    f"the output {t.dims[-1]} scores")
        if key == "output" and not all(_named_index(n) is not None for n in names):
            notes.append(f"output names {names} do not follow <name>__<index>; the backend falls back to config order")
    model_file = config.default_model_filename or MODEL_FILE
    versions = {}
    for v, folder in sorted(_versions(model_dir).items()):
        f = folder / model_file
        if not f.is_file():
            problems.append(f"version folder '{folder}' has no {model_file}")
        else:
            versions[v] = f
    if not _versions(model_dir):
        problems.append(f"no version folder (a number not starting with 0, such as 1/) holding {model_file}")
    ignored = [p.name for p in model_dir.iterdir() if p.is_dir() and p.name not in {str(v) for v in _versions(model_dir)}
               and p.name != "configs" and not p.name.startswith(".")]
    if ignored:
        notes.append(f"folders Triton ignores (not version numbers): {sorted(ignored)}")
    if problems:
        raise BadArtifactError(f"'{model_dir}' is not a valid Triton PyTorch model: " + "; ".join(problems))
    return config, versions, notes


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@dataclass
class GoldenRequest:
    """A version's golden examples as a Triton client sends and receives them: each
    request maps the config's input names to tensors of the config's data type and
    ``[batch] + dims`` (at most ``max_batch_size`` rows); ``expected`` maps the output
    names to the golden outputs shaped as Triton returns them (all requests in order)."""

    version: int
    model_file: Path
    requests: list[dict[str, Any]]
    expected: dict[str, Any]


def golden_requests(model_dir: Union[str, Path], config: Any = None) -> list[GoldenRequest]:
    """One ``GoldenRequest`` per version of a Triton model folder, built from its
    config.pbtxt and each model.pt's golden file.

        >>> [r.version for r in golden_requests("models/digits")]
        [1, 2]
    """
    from torchport.manifest import read_golden

    model_dir = Path(model_dir)
    if config is None:
        config, versions, _ = check_layout(model_dir)
    else:
        versions = {v: f / (config.default_model_filename or MODEL_FILE) for v, f in _versions(model_dir).items()}
    batched = config.max_batch_size > 0
    out = []
    for v, path in sorted(versions.items()):
        golden_in, golden_out = read_golden(path)
        in_pos = _positions([t.name for t in config.input], forward_arguments(path))
        out_pos = _positions([t.name for t in config.output], None)
        for positions, golden, kind in ((in_pos, golden_in, "input"), (out_pos, golden_out, "output")):
            if sorted(positions) != list(range(len(golden))):
                raise BadArtifactError(f"'{path}': the config's {kind}s reach positions {positions}, "
                                       f"the model has {len(golden)} {kind}s")
        whole = {t.name: _as_sent(golden_in[p], t, batched, f"'{path}' golden input") for t, p in zip(config.input, in_pos)}
        expected = {t.name: _as_sent(golden_out[p], t, batched, f"'{path}' golden output") for t, p in zip(config.output, out_pos)}
        sizes = {int(x.shape[0]) for x in whole.values()} if batched else {1}
        if len(sizes) != 1:
            raise BadArtifactError(f"'{path}': the golden inputs disagree on the batch size: {sorted(sizes)}")
        total = sizes.pop()
        step = config.max_batch_size if batched else total
        requests = [{k: x[i:i + step] for k, x in whole.items()} for i in range(0, total, step)] if batched else [whole]
        out.append(GoldenRequest(v, path, requests, expected))
    return out


def _data_type(t) -> str:
    return t.DESCRIPTOR.file.enum_types_by_name["DataType"].values_by_number[t.data_type].name


def _as_sent(x, t, batched: bool, where: str):
    """A model-side tensor (shape [batch] + reshape, or + dims) as the client sees it: [batch] + dims."""
    dtype = _data_type(t)
    if str(x.dtype).replace("torch.", "") != TORCH_DTYPES.get(dtype):
        raise BadArtifactError(f"{where} for '{t.name}' is {x.dtype}, the config says {dtype}")
    lead = list(x.shape[:1]) if batched else []
    model_dims = list(t.reshape.shape) if t.HasField("reshape") else list(t.dims)
    if batched and x.dim() == 0 or not _dims_fit(list(x.shape)[len(lead):], model_dims):
        raise BadArtifactError(f"{where} for '{t.name}' has shape {list(x.shape)}, the config says "
                               f"{'[-1] + ' if batched else ''}{model_dims}")
    if t.HasField("reshape"):
        try:
            return x.reshape(lead + list(t.dims))
        except RuntimeError:
            raise BadArtifactError(f"{where} {list(x.shape)} cannot take '{t.name}' dims {list(t.dims)}") from None
    return x


def serve_like_triton(config: Any, model: Any, forward_args: list[str], request: dict[str, Any]) -> dict[str, Any]:
    """What Triton's PyTorch backend does with one request, with torchport's runtime
    (``model``: a ``NativeModel``) in place of LibTorch inside the server: checks names,
    data types and shapes against the config, reshapes inputs to the model's shape,
    passes them to forward by the backend's naming rule, and returns the outputs under
    the config's names, reshaped and checked as Triton returns them."""
    batched = config.max_batch_size > 0
    names = [t.name for t in config.input]
    if set(request) != set(names):
        raise BadOptionError(f"request: expected inputs {names}, got {sorted(request)}")
    args: list[Any] = [None] * len(names)
    for t, p in zip(config.input, _positions(names, forward_args)):
        x = request[t.name]
        dtype = _data_type(t)
        if str(x.dtype).replace("torch.", "") != TORCH_DTYPES.get(dtype):
            raise BadOptionError(f"request input '{t.name}': expected {dtype}, got {x.dtype}")
        lead = list(x.shape[:1]) if batched else []
        if batched and (x.dim() == 0 or not 1 <= x.shape[0] <= config.max_batch_size):
            raise BadOptionError(f"request input '{t.name}': batch {list(x.shape[:1])} outside 1..{config.max_batch_size}")
        if not _dims_fit(list(x.shape)[len(lead):], t.dims):
            raise BadOptionError(f"request input '{t.name}': shape {list(x.shape)} vs "
                                 f"{'[-1] + ' if batched else ''}{list(t.dims)}")
        args[p] = x.reshape(lead + list(t.reshape.shape)) if t.HasField("reshape") else x
    outputs = model.run(*args)
    response = {}
    for t, p in zip(config.output, _positions([t.name for t in config.output], None)):
        o = outputs[p]
        dtype = _data_type(t)
        if str(o.dtype).replace("torch.", "") != TORCH_DTYPES.get(dtype):
            raise BadArtifactError(f"output '{t.name}': the config says {dtype}, the model returned {o.dtype}")
        lead = [o.shape[0]] if batched and o.dim() else []
        if t.HasField("reshape"):
            o = o.reshape(lead + list(t.dims))
        if (batched and not lead) or not _dims_fit(list(o.shape)[len(lead):], t.dims):
            raise BadArtifactError(f"output '{t.name}': the model returned shape {list(o.shape)}, the config says "
                                   f"{'[-1] + ' if batched else ''}{list(t.dims)}")
        response[t.name] = o
    return response


def check_triton(model_dir: Union[str, Path], *, atol: float = 0.0, rtol: float = 0.0,
                 threads: Optional[int] = None) -> TritonCheck:
    """Checks a Triton model folder without a server: the config against Triton's schema
    and the layout (``check_layout``); that each version's manifest gives the same config
    contract; then the golden request built from the config (``golden_requests``) goes
    through ``serve_like_triton`` with torchport's C++ runtime on that version's
    model.pt, and the outputs equal the golden outputs bit for bit (or within ``atol`` and
    ``rtol``: when the golden batch is larger than ``max_batch_size`` the requests compute
    at other batch sizes, and LibTorch's kernels may then round differently).

        >>> report = check_triton("models/digits"); report.ok
        True
    """
    import torch

    from torchport.native import NativeModel

    model_dir = Path(model_dir)
    config, versions, notes = check_layout(model_dir)
    ModelConfig, text_format = model_config_schema()
    report = TritonCheck(model_dir, config.max_batch_size, sorted(versions), [t.name for t in config.input],
                         [t.name for t in config.output], notes=notes, atol=atol, rtol=rtol)
    for path in versions.values():  # the contract first: its message says more than a failed request would
        expected = ModelConfig()
        text_format.Parse(config_from_manifest(read_manifest(path), forward_arguments(path), name=model_dir.name,
                                               max_batch_size=config.max_batch_size, where=f"'{path}'").to_pbtxt(),
                          expected)
        diffs = _io_differences(config, expected)
        if diffs:
            raise BadArtifactError(f"'{path}' does not fit '{model_dir / CONFIG_FILE}': " + "; ".join(diffs)
                                   + " (its manifest vs the config)")
    for golden in golden_requests(model_dir, config):
        path = golden.model_file
        forward_args = forward_arguments(path)
        model = NativeModel(path, threads=threads)  # verifies the payload checksum
        responses = [serve_like_triton(config, model, forward_args, r) for r in golden.requests]
        got = {k: torch.cat([r[k] for r in responses]) if config.max_batch_size > 0 else responses[0][k]
               for k in golden.expected}
        if len(golden.requests) > 1:
            report.notes.append(
                f"version {golden.version}: the golden batch ({len(next(iter(got.values())))}) is larger than "
                f"max_batch_size {config.max_batch_size}, so it went in {len(golden.requests)} requests; outputs "
                "computed at other batch sizes may differ in the last bits (pass atol/rtol)")
        names = list(golden.expected)
        for row in compare("triton", names, [golden.expected[n] for n in names], [got[n] for n in names], atol, rtol):
            report.rows.append(TritonCheckRow(golden.version, row.output, row.shape, row.dtype, len(golden.requests),
                                              row.max_abs_diff, row.bit_exact, row.ok))
    return report
