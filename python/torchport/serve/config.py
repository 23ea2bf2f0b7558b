"""config.pbtxt from an artifact's manifest (``config_from_manifest``, ``TritonConfig``), and
the names, data types and files of Triton's PyTorch backend."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional, Sequence

from torchport._version import __version__
from torchport.errors import BadArtifactError, BadOptionError
from torchport.manifest import Manifest, TensorSpec


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
