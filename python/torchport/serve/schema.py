"""config.pbtxt read with Triton's own ``ModelConfig`` schema (tritonclient, the ``triton``
extra), and an existing config merged with a new version's."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from torchport._version import __version__
from torchport.errors import BadArtifactError, TorchportError
from torchport.serve.config import CONFIG_FILE, INSTANCE_KINDS


class TritonSchemaUnavailable(TorchportError, ImportError):
    """tritonclient (with protobuf) is not installed, so config.pbtxt cannot be parsed.
    It ends a command with the exit code of a missing component, as a missing runtime does."""

    kind = "unavailable"


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
