"""The artifact's I/O contract: ``torchport/manifest.json`` inside the archive.

Schema 1 (documented in docs/artifact.md)::

    {"schema": 1, "name": "digits_cnn", "torchport_version": "0.1.0",
     "torch_version": "2.13.0+cpu", "export_method": "script",
     "created": "2026-11-29T08:00:00Z",
     "inputs":  [{"name": "image", "dtype": "float32", "shape": ["batch", 1, 8, 8]}],
     "outputs": [{"name": "logits", "dtype": "float32", "shape": [null, 10]}],
     "metadata": {"labels": ["0", "1", ...]}, "golden": true,
     "checksum": "sha256:..."}

A ``null`` dimension is dynamic; a string one is dynamic and named (dimensions
sharing a name agree across the inputs of a call).

    >>> m = read_manifest("model.pt")
    >>> m.inputs[0].shape
    ('batch', 1, 8, 8)
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from torchport.errors import ArtifactNotFoundError, BadArtifactError

SCHEMA = 1
MANIFEST_FILE = "torchport/manifest.json"
GOLDEN_FILE = "torchport/golden.pt"

Shape = tuple[Union[int, str, None], ...]


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor of the contract.

    A dimension is an ``int`` (fixed), ``None`` (dynamic) or a ``str`` (dynamic
    and named: every dimension with that name has the same size across the
    inputs of one call, like ``"batch"``). ``dtype`` and ``shape`` are ``None``
    when derived from a plain TorchScript file that does not say them.
    """

    name: str
    dtype: Optional[str]
    shape: Optional[Shape]

    def shape_str(self) -> str:
        if self.shape is None:
            return "?"
        return "[" + ", ".join("*" if d is None else str(d) for d in self.shape) + "]"

    def is_dynamic(self, dim: int) -> bool:
        return self.shape is not None and not isinstance(self.shape[dim], int)


@dataclass
class Manifest:
    """What an artifact promises: its inputs, outputs and where it came from."""

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    schema: int = SCHEMA
    torchport_version: str = ""
    torch_version: str = ""
    export_method: str = ""
    created: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    golden: bool = False
    checksum: str = ""

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("inputs", "outputs"):
            d[key] = [
                {"name": s["name"], "dtype": s["dtype"], "shape": None if s["shape"] is None else list(s["shape"])}
                for s in d[key]
            ]
        if not self.checksum:
            del d["checksum"]
        return d

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: Any, where: str = "manifest") -> "Manifest":
        if not isinstance(d, dict):
            raise BadArtifactError(f"{where}: must be a JSON object, got {type(d).__name__}")
        schema = d.get("schema")
        if not isinstance(schema, int) or isinstance(schema, bool) or schema < 0:
            raise BadArtifactError(f"{where}: field 'schema' must be a non-negative integer, got {schema!r}")
        if schema > SCHEMA:
            raise BadArtifactError(
                f"{where}: schema {schema} is newer than this torchport reads ({SCHEMA}); upgrade torchport"
            )
        for key in ("name", "inputs", "outputs"):
            if key not in d:
                raise BadArtifactError(f"{where}: missing field '{key}'")

        def specs(key: str) -> list[TensorSpec]:
            items = d[key]
            if not isinstance(items, list):
                raise BadArtifactError(f"{where}: field '{key}' must be a list")
            out = []
            for i, s in enumerate(items):
                if not isinstance(s, dict) or "name" not in s:
                    raise BadArtifactError(f"{where}: {key}[{i}] must be an object with a name")
                shape = s.get("shape")
                if shape is not None and (
                    not isinstance(shape, list)
                    or not all(d is None or (isinstance(d, str) and d) or (type(d) is int and d >= 0) for d in shape)
                ):
                    raise BadArtifactError(
                        f"{where}: {key}[{i}] shape must list non-negative integers, null or names, got {shape!r}"
                    )
                out.append(TensorSpec(s["name"], s.get("dtype"), None if shape is None else tuple(shape)))
            return out

        return cls(
            name=d["name"],
            inputs=specs("inputs"),
            outputs=specs("outputs"),
            schema=schema,
            torchport_version=d.get("torchport_version", ""),
            torch_version=d.get("torch_version", ""),
            export_method=d.get("export_method", ""),
            created=d.get("created", ""),
            metadata=d.get("metadata") or {},
            golden=bool(d.get("golden", False)),
            checksum=d.get("checksum", ""),
        )

    @classmethod
    def from_json(cls, text: str, where: str = "manifest") -> "Manifest":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadArtifactError(f"{where}: not valid JSON ({e})") from None
        return cls.from_dict(d, where)


def _archive(path: Union[str, Path]) -> zipfile.ZipFile:
    p = Path(path)
    if not p.exists():
        raise ArtifactNotFoundError(f"artifact '{p}' does not exist")
    if p.is_dir():
        raise BadArtifactError(f"artifact '{p}' is a directory, not a file")
    try:
        return zipfile.ZipFile(p)
    except zipfile.BadZipFile:
        raise BadArtifactError(f"artifact '{p}' is not a TorchScript archive (not a zip file)") from None


def read_extra_file(path: Union[str, Path], name: str) -> Optional[bytes]:
    """Bytes of a torchport file stored inside the archive, or None if absent."""
    with _archive(path) as z:
        suffix = "/extra/" + name
        for entry in z.namelist():
            if entry.endswith(suffix) and entry.count("/") == name.count("/") + 2:
                return z.read(entry)
    return None


def read_manifest(path: Union[str, Path]) -> Manifest:
    """The manifest stored in an artifact.

    A plain TorchScript file without one gets the contract derived from its
    ``forward`` schema (``schema == 0``; dtypes and shapes unknown), as the C++
    runtime derives it.

        >>> read_manifest("model.pt").input_names
        ['image']
    """
    raw = read_extra_file(path, MANIFEST_FILE)
    if raw is not None:
        return Manifest.from_json(raw.decode("utf-8", errors="replace"), f"'{path}' {MANIFEST_FILE}")
    return _derive_manifest(path)


def _derive_manifest(path: Union[str, Path]) -> Manifest:
    import torch

    from torchport.exporter import _jit

    try:
        module = _jit(torch.jit.load, str(path), map_location="cpu")
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad archives
        raise BadArtifactError(f"artifact '{path}' is not a loadable TorchScript archive: {e}") from None
    schema = module.forward.schema
    inputs = [TensorSpec(a.name, None, None) for a in schema.arguments[1:]]
    ret = schema.returns[0].type if schema.returns else None
    if ret is not None and isinstance(ret, torch.TupleType):
        outputs = [TensorSpec(f"output_{i}", None, None) for i in range(len(ret.elements()))]
    else:
        outputs = [TensorSpec("output", None, None)]
    return Manifest(name=module.original_name, inputs=inputs, outputs=outputs, schema=0)


_NOT_HASHED = {"extra/" + MANIFEST_FILE, ".data/serialization_id"}


def payload_checksum(archive: Union[str, Path, bytes]) -> str:
    """SHA-256 of the model payload: every record of the archive but the
    manifest (which stores this digest) and the per-save serialization id, in
    name order, each as name, a zero byte, its size (8 bytes little-endian) and
    its bytes. The C++ runtime computes the same at load.
    """
    source = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    sha = hashlib.sha256()
    with zipfile.ZipFile(source) as z:
        records = sorted((entry.split("/", 1)[1], entry) for entry in z.namelist() if "/" in entry)
        for name, entry in records:
            if name in _NOT_HASHED:
                continue
            data = z.read(entry)
            sha.update(name.encode() + b"\0" + len(data).to_bytes(8, "little"))
            sha.update(data)
    return "sha256:" + sha.hexdigest()


def read_golden(path: Union[str, Path]) -> tuple[list[Any], list[Any]]:
    """The golden ``(inputs, outputs)`` stored in an artifact at export."""
    import torch

    raw = read_extra_file(path, GOLDEN_FILE)
    if raw is None:
        raise BadArtifactError(f"artifact '{path}' holds no golden examples ({GOLDEN_FILE})")
    try:
        golden = torch.load(io.BytesIO(raw), weights_only=True)
        return list(golden["inputs"]), list(golden["outputs"])
    except Exception as e:  # noqa: BLE001
        raise BadArtifactError(f"artifact '{path}' {GOLDEN_FILE} cannot be read: {e}") from None
