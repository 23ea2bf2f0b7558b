"""``export_triton``: an artifact into a Triton model repository, as a new version folder
beside the others, every file written atomically."""

from __future__ import annotations

import errno
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from torchport._files import sweep_temporaries, temporary_folder, write_atomically
from torchport.errors import BadArtifactError, BadOptionError
from torchport.manifest import read_manifest
from torchport.serve.config import CONFIG_FILE, DEFAULT_QUEUE_DELAY_US, LABEL_FILE, MODEL_FILE, _labels, config_from_manifest
from torchport.serve.forward import forward_arguments
from torchport.serve.schema import _existing_settings, _merge_config


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
    model_dir = _model_dir(Path(repo), name if name is not None else artifact.stem)
    version = _new_version(model_dir, version, force)
    manifest = read_manifest(artifact)
    forward_args = forward_arguments(artifact)
    config_path = model_dir / CONFIG_FILE
    options = {
        "max_batch_size": max_batch_size,
        "dynamic_batching": dynamic_batching,
        "max_queue_delay_us": max_queue_delay_us,
        "preferred_batch_sizes": tuple(preferred_batch_sizes) if preferred_batch_sizes is not None else None,
        "instances": instances,
        "instance_kind": instance_kind,
    }
    config = config_from_manifest(manifest, forward_args, name=model_dir.name, where=f"'{artifact}'",
                                  **_chosen(options, config_path))
    labels = _labels(manifest, f"'{artifact}'") if any(t.label_filename for t in config.outputs) else []
    text: Optional[str] = config.to_pbtxt()
    if config_path.exists():
        given = {k: v for k, v in options.items() if v is not None}
        text = _merge_config(config_path, text, model_dir, version, given)  # None: the config already says it
        _check_labels(model_dir / LABEL_FILE, labels, artifact)

    model_dir.mkdir(parents=True, exist_ok=True)
    label_file = None
    if labels:
        label_file = model_dir / LABEL_FILE
        write_atomically(label_file, lambda f: f.write("".join(x + "\n" for x in labels).encode()))
    if text is not None:
        write_atomically(config_path, lambda f: f.write(text.encode()))
    model_file = _write_version(artifact, model_dir, version, force=force)
    return TritonExport(model_dir, version, model_file, config_path, label_file, text is not None, config.max_batch_size)


def _model_dir(repo: Path, name: str) -> Path:
    """``repo/name``, refused when either exists and is not a folder or the name cannot be one."""
    if repo.exists() and not repo.is_dir():
        raise BadOptionError(f"repo: '{repo}' exists and is not a folder")
    model_dir = repo / _check_name(name)
    if model_dir.exists() and not model_dir.is_dir():
        raise BadOptionError(f"'{model_dir}' exists and is not a folder")
    return model_dir


def _new_version(model_dir: Path, version: Optional[int], force: bool) -> int:
    """The version to write: ``version``, or one after the highest there; an existing one only with ``force``."""
    if version is None:
        version = max(_versions(model_dir), default=0) + 1
    _check_version(version)
    target = model_dir / str(version)
    if target.exists() and not force:
        raise BadOptionError(
            f"version {version} of '{model_dir}' exists ({target}); pass force=True (--force) to replace it, "
            "or another version"
        )
    return version


def _chosen(options: dict[str, Any], config_path: Path) -> dict[str, Any]:
    """Each option as given, else what an existing config.pbtxt says, else its default."""
    existing = _existing_settings(config_path) if config_path.exists() else {}
    defaults = {"max_queue_delay_us": DEFAULT_QUEUE_DELAY_US, "preferred_batch_sizes": (), "instances": 1,
                "instance_kind": "auto"}
    return {k: v if v is not None else existing.get(k, defaults.get(k)) for k, v in options.items()}


def _check_labels(label_path: Path, labels: list[str], artifact: Path) -> None:
    """Refuses labels that differ from the label file every version shares."""
    if labels and label_path.exists() and label_path.read_text().splitlines() != labels:
        raise BadArtifactError(
            f"'{artifact}' has labels {labels}, '{label_path}' (shared by every version) has "
            f"{label_path.read_text().splitlines()}; export to another model name"
        )


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
