"""Serve an artifact with NVIDIA Triton Inference Server's PyTorch backend.

``export_triton`` writes (or adds a version to) a Triton model repository::

    REPO/NAME/config.pbtxt      the model configuration, from the artifact's manifest
    REPO/NAME/labels.txt        one label per line, for a classifier output (when the manifest has labels)
    REPO/NAME/<N>/model.pt      the artifact itself (TorchScript; its manifest and golden file ride along)

``check_triton`` validates such a model without a server: it parses ``config.pbtxt``
with Triton's own schema (``tritonclient``'s ``ModelConfig``, the ``triton`` extra),
checks the layout against the repository rules, and runs a request built from the
config (names, data types, dims, reshape, ``max_batch_size``) through torchport's C++
runtime on every version's ``model.pt``, comparing with the golden outputs bit for bit.

    >>> from torchport.triton import export_triton, check_triton
    >>> export_triton("digits.pt", "models", name="digits")
    TritonExport(model_dir=PosixPath('models/digits'), version=1, ...)
    >>> print(check_triton("models/digits"))

The rules followed, from Triton's documentation:

- names: the PyTorch backend maps config inputs onto ``forward``'s arguments either by
  argument name or by ``<name>__<index>``, and outputs by ``<name>__<index>`` over a flat
  tuple. Inputs keep the manifest's names when they are ``forward``'s argument names;
  otherwise, and for every output, the name becomes ``<name>__<index>``
  (``INPUT__<index>``/``OUTPUT__<index>`` when the name itself is not a plain identifier
  or contains ``__``).
- shapes: with ``max_batch_size > 0`` the full shape is ``[-1] + dims``, so a batch must be
  dim 0 of every input and output; dynamic dims are ``-1``; a tensor whose shape is only
  the batch (or a scalar) is declared ``dims: [1]`` with ``reshape: { shape: [] }``.
- data types: those the backend converts (bool, uint8, int8, int16, int32, int64,
  float16, float32, float64).
- versions: numeric folders not starting with 0; Triton ignores other folders.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from torchport._report import RowVerdict, text_table
from torchport._files import sweep_temporaries, temporary_folder, write_atomically
from torchport._version import __version__
from torchport._warnings import quiet_jit
from torchport.errors import BadArtifactError, BadOptionError, TorchportError
from torchport.manifest import Manifest, TensorSpec, read_manifest

PLATFORM = "pytorch_libtorch"
BACKEND = "pytorch"
CONFIG_FILE = "config.pbtxt"
MODEL_FILE = "model.pt"
LABEL_FILE = "labels.txt"
DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_QUEUE_DELAY_US = 100
INSTANCE_KINDS = {"auto": "KIND_AUTO", "cpu": "KIND_CPU", "gpu": "KIND_GPU"}

#: manifest dtype -> Triton data type, for the types the PyTorch backend converts
#: (its ModelConfigDataTypeToTorchType); anything else is refused.
DATA_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
}
TORCH_DTYPES = {v: k for k, v in DATA_TYPES.items()}

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.]*")


class TritonSchemaUnavailable(TorchportError, ImportError):
    """tritonclient (with protobuf) is not installed, so config.pbtxt cannot be parsed.
    It ends a command with the exit code of a missing component, as a missing runtime does."""

    kind = "unavailable"


# ---------------------------------------------------------------------------- the config


INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class TritonTensor:
    """One input or output of config.pbtxt, and the manifest tensor it comes from."""

    name: str  # the name in config.pbtxt
    source: str  # the manifest's name
    data_type: str  # TYPE_FP32...
    dims: tuple[int, ...]  # without the batch dim when max_batch_size > 0; -1 is dynamic
    reshape: Optional[tuple[int, ...]] = None  # the model's shape, when dims had to be [1]
    label_filename: str = ""


@dataclass
class TritonConfig:
    """What torchport writes to config.pbtxt (``to_pbtxt``)."""

    name: str
    max_batch_size: int
    inputs: list[TritonTensor]
    outputs: list[TritonTensor]
    dynamic_batching: bool = False
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    preferred_batch_sizes: tuple[int, ...] = ()
    instances: int = 1
    instance_kind: str = "auto"
    source: str = ""  # a comment line saying where the config came from

    def to_pbtxt(self) -> str:
        lines = []
        if self.source:  # names come from the artifact: keep them on the comment line
            lines.append("# " + self.source.encode("unicode_escape").decode("ascii"))
        lines += [
            f"name: {_quote(self.name)}",
            f"platform: {_quote(PLATFORM)}",
            f"backend: {_quote(BACKEND)}",
            f"max_batch_size: {self.max_batch_size}",
        ]
        for key, tensors in (("input", self.inputs), ("output", self.outputs)):
            lines.append(f"{key} [")
            for i, t in enumerate(tensors):
                body = [
                    f"name: {_quote(t.name)}",
                    f"data_type: {t.data_type}",
                    f"dims: [ {', '.join(map(str, t.dims))} ]",
                ]
                if t.reshape is not None:
                    body.append(f"reshape: {{ shape: [ {', '.join(map(str, t.reshape))} ] }}")
                if t.label_filename:
                    body.append(f"label_filename: {_quote(t.label_filename)}")
                comma = "," if i + 1 < len(tensors) else ""
                lines += ["  {", *[f"    {b}" for b in body], "  }" + comma]
            lines.append("]")
        if self.dynamic_batching:
            lines.append("dynamic_batching {")
            if self.preferred_batch_sizes:
                lines.append(f"  preferred_batch_size: [ {', '.join(map(str, self.preferred_batch_sizes))} ]")
            lines.append(f"  max_queue_delay_microseconds: {self.max_queue_delay_us}")
            lines.append("}")
        lines += [
            "instance_group [",
            "  {",
            f"    count: {self.instances}",
            f"    kind: {INSTANCE_KINDS[self.instance_kind]}",
            "  }",
            "]",
        ]
        return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _triton_name(name: str, index: int, kind: str) -> str:
    if _PLAIN_NAME.fullmatch(name) and "__" not in name:
        return f"{name}__{index}"
    return f"{kind.upper()}__{index}"


def _dims(spec: TensorSpec, batched: bool) -> tuple[tuple[int, ...], Optional[tuple[int, ...]]]:
    """(dims, reshape) for config.pbtxt: -1 for dynamic dims; the batch dim dropped when
    batched; ``[1]`` plus an empty reshape when nothing would be left (Triton wants rank >= 1)."""
    assert spec.shape is not None
    shape = spec.shape[1:] if batched else spec.shape
    dims = tuple(d if isinstance(d, int) else -1 for d in shape)
    if not dims:
        return (1,), ()
    return dims, None


def _check_tensor(spec: TensorSpec, kind: str, where: str) -> str:
    if spec.dtype is None or spec.shape is None:
        raise BadArtifactError(f"{where}: {kind} '{spec.name}' has no dtype or shape in the manifest; config.pbtxt needs both")
    if spec.dtype not in DATA_TYPES:
        raise BadArtifactError(
            f"{where}: {kind} '{spec.name}' is {spec.dtype}; Triton's PyTorch backend takes "
            f"{', '.join(DATA_TYPES)} (convert it inside the model and re-export)"
        )
    return DATA_TYPES[spec.dtype]


def _batching(manifest: Manifest, max_batch_size: Optional[int], where: str) -> int:
    """The max_batch_size to write: a batch shared as dim 0 by every input and output
    becomes Triton's batch; anything else about "batch" is refused with the reason."""
    tensors = [("input", s) for s in manifest.inputs] + [("output", s) for s in manifest.outputs]
    elsewhere = [(k, s, s.shape.index("batch", 1)) for k, s in tensors if "batch" in s.shape[1:]]
    if max_batch_size == 0:
        return 0  # no batching by Triton: every dim is stated, the batch as -1
    for kind, spec, dim in elsewhere:
        if spec.shape[0] != "batch":
            raise BadArtifactError(
                f"{where}: {kind} '{spec.name}' has its batch at dim {dim} (shape {spec.shape_str()}); "
                "Triton batches along dim 0 of every input and output. Export with the batch first, "
                "or pass max_batch_size=0 (--max-batch-size 0) to serve it without Triton's batching"
            )
    first = [s.shape[0] == "batch" if s.shape else False for _, s in tensors]
    if all(first):
        return DEFAULT_MAX_BATCH_SIZE if max_batch_size is None else max_batch_size
    if not any(first) and not elsewhere and max_batch_size is None:
        return 0  # nothing batches: a fixed-shape model
    kind, spec = next((k, s) for (k, s), f in zip(tensors, first) if not f)
    raise BadArtifactError(
        f"{where}: {kind} '{spec.name}' (shape {spec.shape_str()}) does not have the shared 'batch' as dim 0, "
        f"so Triton cannot batch this model (max_batch_size {max_batch_size if max_batch_size is not None else 'default'}): "
        "every input and output must start with it. Pass max_batch_size=0 (--max-batch-size 0) to serve it "
        "without Triton's batching"
    )


def config_from_manifest(
    manifest: Manifest,
    forward_args: Sequence[str],
    *,
    name: str,
    max_batch_size: Optional[int] = None,
    dynamic_batching: Optional[bool] = None,
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    preferred_batch_sizes: Sequence[int] = (),
    instances: int = 1,
    instance_kind: str = "auto",
    where: str = "artifact",
) -> TritonConfig:
    """The Triton configuration for an artifact's contract. ``forward_args`` are the
    TorchScript ``forward``'s argument names (after ``self``), which decide the input naming.

        >>> config_from_manifest(read_manifest("mlp.pt"), ["x"], name="mlp").to_pbtxt()
    """
    if manifest.schema == 0:
        raise BadArtifactError(
            f"{where} is a plain TorchScript file: it states no dtypes or shapes, which config.pbtxt needs. "
            "Export the model with torchport.export (or torchport export) to give it a contract"
        )
    # Ranges are those of Triton's ModelConfig fields (int32 counts, a uint64 delay),
    # so that a config written here always parses there.
    if max_batch_size is not None and not 0 <= max_batch_size <= INT32_MAX:
        raise BadOptionError(f"max_batch_size: expected 0..{INT32_MAX} (Triton's int32), got {max_batch_size}")
    if not 1 <= instances <= INT32_MAX:
        raise BadOptionError(f"instances: expected 1..{INT32_MAX} (Triton's int32), got {instances}")
    if instance_kind not in INSTANCE_KINDS:
        raise BadOptionError(f"instance_kind: expected one of {list(INSTANCE_KINDS)}, got {instance_kind!r}")
    if not 0 <= max_queue_delay_us < 2**64:
        raise BadOptionError(f"max_queue_delay_us: expected 0..{2**64 - 1} (Triton's uint64), got {max_queue_delay_us}")
    types_in = [_check_tensor(s, "input", where) for s in manifest.inputs]
    types_out = [_check_tensor(s, "output", where) for s in manifest.outputs]
    if len(forward_args) != len(manifest.inputs):
        raise BadArtifactError(
            f"{where}: forward takes {len(forward_args)} arguments {list(forward_args)}, the manifest lists "
            f"{len(manifest.inputs)} inputs {manifest.input_names}; Triton passes exactly the config's inputs"
        )
    batch = _batching(manifest, max_batch_size, where)
    if dynamic_batching and batch == 0:
        raise BadOptionError(
            "dynamic_batching: Triton's dynamic batcher needs max_batch_size > 0, and this configuration has 0"
        )
    if preferred_batch_sizes and batch == 0:
        raise BadOptionError("preferred_batch_sizes: the dynamic batcher needs max_batch_size > 0, and this configuration has 0")
    bad = [b for b in preferred_batch_sizes if not 1 <= b <= batch]
    if bad:
        raise BadOptionError(f"preferred_batch_sizes: expected sizes in 1..{batch} (max_batch_size), got {bad}")

    by_argument = list(manifest.input_names) == list(forward_args)
    inputs = []
    for i, (spec, dtype) in enumerate(zip(manifest.inputs, types_in)):
        dims, reshape = _dims(spec, batch > 0)
        inputs.append(TritonTensor(spec.name if by_argument else _triton_name(spec.name, i, "input"), spec.name,
                                   dtype, dims, reshape))
    outputs = []
    for i, (spec, dtype) in enumerate(zip(manifest.outputs, types_out)):
        dims, reshape = _dims(spec, batch > 0)
        outputs.append(TritonTensor(_triton_name(spec.name, i, "output"), spec.name, dtype, dims, reshape))

    labels = _labels(manifest, where)
    if labels:
        fits = [i for i, t in enumerate(outputs) if t.reshape is None and t.dims == (len(labels),)]
        if len(fits) == 1:  # the classifier output: one score per label
            outputs[fits[0]] = replace(outputs[fits[0]], label_filename=LABEL_FILE)
    return TritonConfig(
        name=name,
        max_batch_size=batch,
        inputs=inputs,
        outputs=outputs,
        dynamic_batching=batch > 0 if dynamic_batching is None else dynamic_batching,
        max_queue_delay_us=max_queue_delay_us,
        preferred_batch_sizes=tuple(preferred_batch_sizes),
        instances=instances,
        instance_kind=instance_kind,
        source=f"written by torchport {__version__} from manifest '{manifest.name}': "
        + ", ".join(f"{t.name} = {t.source}" for t in inputs + outputs),
    )


def _labels(manifest: Manifest, where: str) -> list[str]:
    labels = manifest.metadata.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise BadArtifactError(f"{where}: metadata 'labels' must be a list of strings, got {labels!r}")
    bad = [x for x in labels if "\n" in x or "\r" in x]
    if bad:
        raise BadArtifactError(f"{where}: labels {bad} contain a line break; a Triton label file holds one label per line")
    return labels


# ---------------------------------------------------------------------------- what Triton can call


def _load_script(path: Union[str, Path]):
    import torch

    from torchport._ext import load_native

    # The runtime's reader checks the file first (regular file, zip and pickle
    # limits, checksum), so torch.jit.load below only ever sees a checked file.
    load_native().inspect(str(path))
    # torch.jit.load warns that TorchScript is deprecated in this torch; it is
    # the format Triton's PyTorch backend loads, so silence exactly that.
    with quiet_jit():
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as e:  # noqa: BLE001 - torch raises many types for bad archives
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BadArtifactError(f"'{path}' is not a loadable TorchScript archive: {first}") from None


def forward_arguments(path: Union[str, Path]) -> list[str]:
    """The names of ``forward``'s arguments, after refusing what Triton's PyTorch
    backend cannot call: arguments that are not tensors, and outputs that are not a
    tensor or a flat tuple of tensors (the backend maps outputs by position)."""
    try:
        st = Path(path).stat()
    except OSError:
        return list(_forward_arguments(str(path), 0, 0, 0))  # the loader says what is wrong
    # Loading a TorchScript file costs; the check asks several times about the same file.
    return list(_forward_arguments(str(path), st.st_ino, st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=32)
def _forward_arguments(path: str, inode: int, size: int, mtime_ns: int) -> tuple[str, ...]:
    import torch

    schema = _load_script(path).forward.schema
    args = schema.arguments[1:]  # after self
    for a in args:
        if not isinstance(a.type, torch.TensorType):
            raise BadArtifactError(
                f"'{path}': forward's argument '{a.name}' is {a.type}, not a tensor; Triton's PyTorch backend "
                "passes only tensors to forward (or one Dict[str, Tensor], which torchport's contract does not "
                "describe). Make it a tensor input, or a constant inside the model, and re-export"
            )
    if len(schema.returns) != 1:
        raise BadArtifactError(f"'{path}': forward returns {len(schema.returns)} values; expected one tensor or a tuple")
    ret = schema.returns[0].type
    flat = isinstance(ret, torch.TensorType) or (
        isinstance(ret, torch.TupleType) and all(isinstance(e, torch.TensorType) for e in ret.elements())
    )
    if not flat:
        raise BadArtifactError(
            f"'{path}': forward returns {ret}, a structured output whose tensors would need names flattened; "
            "Triton's PyTorch backend maps outputs by position in a flat tuple (<name>__<index>). "
            "Return a tensor or a flat tuple of tensors and re-export"
        )
    return tuple(a.name for a in args)


# ---------------------------------------------------------------------------- the repository


@dataclass
class TritonExport:
    """What ``export_triton`` wrote."""

    model_dir: Path
    version: int
    model: Path
    config: Path
    labels: Optional[Path]
    config_written: bool  # False: an existing config.pbtxt already said the same and was left as it was
    max_batch_size: int


def _versions(model_dir: Path) -> dict[int, Path]:
    """Folders Triton takes as versions: numeric names that do not start with 0."""
    if not model_dir.is_dir():
        return {}
    return {int(p.name): p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit() and not p.name.startswith("0")}


_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def _check_name(name: str) -> str:
    if not _MODEL_NAME.fullmatch(name):
        raise BadOptionError(f"name: {name!r} cannot be a model folder; expected letters, digits, '_', '-' and '.' "
                             "(not first), such as 'digits'")
    return name


def export_triton(
    artifact: Union[str, Path],
    repo: Union[str, Path],
    *,
    name: Optional[str] = None,
    version: Optional[int] = None,
    max_batch_size: Optional[int] = None,
    dynamic_batching: Optional[bool] = None,
    max_queue_delay_us: Optional[int] = None,
    preferred_batch_sizes: Optional[Sequence[int]] = None,
    instances: Optional[int] = None,
    instance_kind: Optional[str] = None,
    force: bool = False,
) -> TritonExport:
    """Writes ``artifact`` into the Triton model repository ``repo`` as model ``name``
    (default: the artifact's file name without suffix), version ``version`` (default: one
    after the highest there). Other versions are not touched.

    ``max_batch_size`` defaults to 8 when every input and output starts with the shared
    ``batch`` dim, else 0; dynamic batching is on when batching (queue delay 100 us).
    Options left as None keep what an existing config.pbtxt says. A new version whose
    contract (inputs, outputs, max_batch_size, labels) differs from the existing config is
    refused: one config serves every version. An existing version is replaced only with
    ``force=True``. Every file is written atomically; a new version folder appears complete.

        >>> export_triton("digits.pt", "models", name="digits", instances=2)
    """
    artifact = Path(artifact)
    repo = Path(repo)
    if repo.exists() and not repo.is_dir():
        raise BadOptionError(f"repo: '{repo}' exists and is not a folder")
    name = _check_name(name if name is not None else artifact.stem)
    model_dir = repo / name
    if model_dir.exists() and not model_dir.is_dir():
        raise BadOptionError(f"'{model_dir}' exists and is not a folder")
    versions = _versions(model_dir)
    if version is None:
        version = max(versions, default=0) + 1
    _check_version(version)
    target = model_dir / str(version)
    if target.exists() and not force:
        raise BadOptionError(
            f"version {version} of '{model_dir}' exists ({target}); pass force=True (--force) to replace it, "
            "or another version"
        )

    manifest = read_manifest(artifact)
    forward_args = forward_arguments(artifact)
    config_path = model_dir / CONFIG_FILE
    existing = _existing_settings(config_path) if config_path.exists() else {}
    options = {
        "max_batch_size": max_batch_size,
        "dynamic_batching": dynamic_batching,
        "max_queue_delay_us": max_queue_delay_us,
        "preferred_batch_sizes": tuple(preferred_batch_sizes) if preferred_batch_sizes is not None else None,
        "instances": instances,
        "instance_kind": instance_kind,
    }
    defaults = {"max_queue_delay_us": DEFAULT_QUEUE_DELAY_US, "preferred_batch_sizes": (), "instances": 1,
                "instance_kind": "auto"}
    chosen = {k: v if v is not None else existing.get(k, defaults.get(k)) for k, v in options.items()}
    config = config_from_manifest(manifest, forward_args, name=name, where=f"'{artifact}'", **chosen)
    labels = _labels(manifest, f"'{artifact}'") if any(t.label_filename for t in config.outputs) else []
    text = config.to_pbtxt()

    config_written = True
    if config_path.exists():
        text = _merge_config(config_path, text, model_dir, version, {k: v for k, v in options.items() if v is not None})
        config_written = text is not None
        label_path = model_dir / LABEL_FILE
        if labels and label_path.exists() and label_path.read_text().splitlines() != labels:
            raise BadArtifactError(
                f"'{artifact}' has labels {labels}, '{label_path}' (shared by every version) has "
                f"{label_path.read_text().splitlines()}; export to another model name"
            )

    model_dir.mkdir(parents=True, exist_ok=True)
    label_file = None
    if labels:
        label_file = model_dir / LABEL_FILE
        write_atomically(label_file, lambda f: f.write("".join(x + "\n" for x in labels).encode()))
    if config_written:
        write_atomically(config_path, lambda f: f.write(text.encode()))
    model_file = _write_version(artifact, model_dir, version, force=force)
    return TritonExport(model_dir, version, model_file, config_path, label_file, config_written, config.max_batch_size)


def _check_version(version: int) -> None:
    if version < 1:
        raise BadOptionError(f"version: expected >= 1 (Triton ignores version folders named 0...), got {version}")
    if version >= 2**63:  # Triton reads version folders as int64
        raise BadOptionError(f"version: expected at most {2**63 - 1} (Triton's int64), got {version}")


def _write_version(artifact: Path, model_dir: Path, version: int, *, force: bool) -> Path:
    target = model_dir / str(version)
    if target.exists():
        if not force:  # another export created it since the caller looked
            raise BadOptionError(_taken(model_dir, version, target))
        return write_atomically(target / MODEL_FILE, lambda f: _copy(artifact, f))
    # A new version is built in a hidden folder (Triton ignores it) and renamed in
    # whole. rename(2) onto a folder that another export has filled in the meantime
    # fails (ENOTEMPTY/EEXIST), so of two concurrent exports one wins, the other is told.
    sweep_temporaries(model_dir)  # the folders of exports killed before their rename
    tmp = temporary_folder(model_dir, str(version))
    try:
        tmp.chmod(0o777 & ~_umask())
        write_atomically(tmp / MODEL_FILE, lambda f: _copy(artifact, f))
        try:
            os.rename(tmp, target)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            if not force:
                raise BadOptionError(_taken(model_dir, version, target)) from None
            write_atomically(target / MODEL_FILE, lambda f: _copy(artifact, f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / MODEL_FILE


def _taken(model_dir: Path, version: int, target: Path) -> str:
    return (f"version {version} of '{model_dir}' was written by another export while this one ran ({target}); "
            "nothing was replaced: pass force=True (--force) to replace it, or another version")


def _copy(src: Path, f) -> None:
    with open(src, "rb") as s:
        shutil.copyfileobj(s, f, 1 << 20)


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------- Triton's schema


def model_config_schema():
    """tritonclient's ``ModelConfig`` message class and protobuf's ``text_format``."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except (ImportError, RuntimeError) as e:  # tritonclient.grpc raises RuntimeError without grpcio
        raise TritonSchemaUnavailable(
            f"reading config.pbtxt needs Triton's schema from tritonclient ({e}); "
            "install it with: pip install 'torchport[triton]' (or pip install 'tritonclient[grpc]')"
        ) from None
    return model_config_pb2.ModelConfig, text_format


def parse_config(path: Union[str, Path]):
    """config.pbtxt parsed with Triton's ``ModelConfig`` schema; a syntax error or an
    unknown field is a BadArtifactError naming the file, line and column."""
    ModelConfig, text_format = model_config_schema()
    path = Path(path)
    if not path.is_file():
        raise BadArtifactError(f"'{path}' is missing or not a regular file; every model folder needs its {CONFIG_FILE}")
    message = ModelConfig()
    try:
        text_format.Parse(path.read_text(), message)
    except text_format.ParseError as e:
        raise BadArtifactError(f"'{path}' does not parse against Triton's ModelConfig schema: {e}") from None
    except UnicodeDecodeError as e:
        raise BadArtifactError(f"'{path}' is not UTF-8 text: {e}") from None
    return message


def _existing_settings(config_path: Path) -> dict[str, Any]:
    c = parse_config(config_path)
    kinds = {v: k for k, v in INSTANCE_KINDS.items()}
    out: dict[str, Any] = {"max_batch_size": c.max_batch_size, "dynamic_batching": c.HasField("dynamic_batching")}
    if c.HasField("dynamic_batching"):
        out["max_queue_delay_us"] = c.dynamic_batching.max_queue_delay_microseconds
        out["preferred_batch_sizes"] = tuple(c.dynamic_batching.preferred_batch_size)
    if len(c.instance_group) == 1:
        group = c.instance_group[0]
        out["instances"] = group.count or 1
        kind = type(group).Kind.Name(group.kind)
        if kind in kinds:
            out["instance_kind"] = kinds[kind]
    return out


def _io_differences(old, new) -> list[str]:
    diffs = []
    if old.max_batch_size != new.max_batch_size:
        diffs.append(f"max_batch_size {new.max_batch_size} vs {old.max_batch_size}")
    for key in ("input", "output"):
        a, b = list(getattr(old, key)), list(getattr(new, key))
        if [t.name for t in a] != [t.name for t in b]:
            diffs.append(f"{key} names {[t.name for t in b]} vs {[t.name for t in a]}")
            continue
        for x, y in zip(a, b):
            if x != y:
                diffs.append(f"{key} '{y.name}': {_tensor_text(y)} vs {_tensor_text(x)}")
    return diffs


def _tensor_text(t) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(t, as_one_line=True)


def _merge_config(config_path: Path, text: str, model_dir: Path, version: int, given: dict[str, Any]) -> Optional[str]:
    """The config to write when ``model_dir`` already has one: None to leave it as it
    is; the old one with the given scheduling options changed; a refusal when the new
    version's contract differs (one config serves every version)."""
    ModelConfig, text_format = model_config_schema()
    old = parse_config(config_path)
    new = ModelConfig()
    text_format.Parse(text, new)
    diffs = _io_differences(old, new)
    if diffs:
        raise BadArtifactError(
            f"version {version} does not fit '{config_path}', which serves every version of '{model_dir.name}': "
            + "; ".join(diffs)
            + " (new vs existing). Export it as another model (--name), or to a new repository"
        )
    merged = ModelConfig()
    merged.CopyFrom(old)
    if any(k in given for k in ("dynamic_batching", "max_queue_delay_us", "preferred_batch_sizes")):
        merged.ClearField("dynamic_batching")
        if new.HasField("dynamic_batching"):
            merged.dynamic_batching.CopyFrom(new.dynamic_batching)
    if any(k in given for k in ("instances", "instance_kind")):
        del merged.instance_group[:]
        merged.instance_group.extend(new.instance_group)
    if merged == old:
        return None
    return f"# {CONFIG_FILE} of '{model_dir.name}', updated by torchport {__version__}\n" + text_format.MessageToString(merged)


# ---------------------------------------------------------------------------- checking without a server


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


def compare_outputs(expected: dict[str, Any], got: dict[str, Any], *, atol: float = 0.0,
                    rtol: float = 0.0) -> list[tuple[str, list[int], str, float, bool, bool]]:
    """(name, shape, dtype, max abs diff, bit-exact, ok) per expected output, judged by
    the runtime's one comparison (``torchport::compare_outputs``, through
    ``torchport.comparison``): ok is bit-exact, or within ``atol + rtol * |expected|``."""
    from torchport.comparison import compare

    rows = []
    for name, want in expected.items():
        g = got.get(name)
        if g is None:
            rows.append((name, list(want.shape), str(want.dtype).replace("torch.", ""), float("inf"), False, False))
            continue
        (row,) = compare("triton", [name], [want], [g], atol, rtol)
        rows.append((name, list(row.shape), row.dtype, row.max_abs_diff, row.bit_exact, row.ok))
    return rows


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
        for name, shape, dtype, diff, exact, ok in compare_outputs(golden.expected, got, atol=atol, rtol=rtol):
            report.rows.append(TritonCheckRow(golden.version, name, shape, dtype, len(golden.requests), diff, exact, ok))
    return report


__all__ = [
    "GoldenRequest",
    "TritonCheck",
    "TritonCheckRow",
    "TritonConfig",
    "TritonExport",
    "TritonSchemaUnavailable",
    "TritonTensor",
    "check_layout",
    "check_triton",
    "config_from_manifest",
    "export_triton",
    "compare_outputs",
    "forward_arguments",
    "golden_requests",
    "model_config_schema",
    "parse_config",
    "serve_like_triton",
]
