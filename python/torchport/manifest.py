"""The artifact's I/O contract: ``torchport/manifest.json`` inside the archive.

The schema (2, documented in docs/artifact.md) is defined once, in the C++
runtime: reading, validating and writing manifests all go through it
(``torchport._native``), so ``inspect``, ``verify``, ``export`` and the runtime
accept and refuse exactly the same files::

    {"schema": 2, "name": "digits_cnn", "torchport_version": "0.1.0",
     "torch_version": "2.13.0+cpu", "export_method": "script",
     "created": "2026-11-29T08:00:00Z",
     "inputs":  [{"name": "image", "dtype": "float32", "shape": ["batch", 1, 8, 8]}],
     "outputs": [{"name": "logits", "dtype": "float32", "shape": [null, 10]}],
     "metadata": {"labels": ["0", "1", ...]}, "golden": true,
     "checksum": "xxh3-128+manifest:...",
     "format": "aoti", "tolerance": {"atol": 1e-05, "rtol": 0.0001}}

``format`` and ``tolerance`` are optional: a manifest without them (every one
written before formats) is TorchScript and bit-exact.

A ``null`` dimension is dynamic; a string one is dynamic and named (dimensions
sharing a name agree across the inputs of a call).

    >>> m = read_manifest("model.pt")
    >>> m.inputs[0].shape
    ('batch', 1, 8, 8)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from torchport.errors import TorchportError

Shape = tuple[Union[int, str, None], ...]


def _native():
    from torchport._ext import load_native

    return load_native()


@dataclass(frozen=True)
class ImageSpec:
    """How an image input takes pictures, as the runtime's ``ImageSpec``: uint8
    ``[batch, H, W, 3]`` RGB of any size; the graph turns HWC into CHW, resizes to
    ``size`` (bilinear, align_corners false, no antialias), divides by 255 and
    normalises with ``mean`` and ``std`` (per channel, on the [0, 1] scale)."""

    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layout: str = "HWC"
    channels: str = "RGB"
    range: tuple[int, int] = (0, 255)
    resize: str = "bilinear"

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "channels": self.channels, "range": list(self.range),
                "resize": {"size": list(self.size), "method": self.resize, "antialias": False, "align_corners": False},
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_native(cls, s: Any) -> Optional["ImageSpec"]:
        if s is None:
            return None
        return cls(tuple(s.size), tuple(s.mean), tuple(s.std), s.layout, s.channels, tuple(s.range), s.resize)


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
    #: an input that may be left out (None) at run time
    optional: bool = False
    #: output dims whose size depends on the input values (detections kept)
    data_dependent: tuple[int, ...] = ()
    #: an input that takes 8-bit pictures: how the graph reads them (None otherwise)
    image: Optional[ImageSpec] = None

    def shape_str(self) -> str:
        if self.shape is None:
            return "?"
        return "[" + ", ".join("*" if d is None else str(d) for d in self.shape) + "]"

    def is_dynamic(self, dim: int) -> bool:
        return self.shape is not None and not isinstance(self.shape[dim], int)


@dataclass(frozen=True)
class FeatureSpec:
    """One input column of a tabular model, as the runtime's ``FeatureSpec``: ``numeric``
    (one float) or ``categorical`` (one-hot over ``vocabulary``; an unknown value is zeros)."""

    name: str
    type: str = "numeric"
    #: a tuple as the runtime reads it; a CSV dataset holds the sorted list it learnt
    vocabulary: Sequence[str] = ()

    @property
    def width(self) -> int:
        """How many floats of the model's input this column takes."""
        return len(self.vocabulary) if self.type == "categorical" else 1

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type == "categorical":
            d["vocabulary"] = list(self.vocabulary)
        return d


@dataclass
class Manifest:
    """What an artifact promises: its inputs, outputs and where it came from.

    Built from the runtime's parsed manifest (``from_native``) or validated by
    it (``validated``); ``to_json`` is the runtime's serialisation.
    """

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    schema: int = 1
    torchport_version: str = ""
    torch_version: str = ""
    export_method: str = ""
    created: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    golden: bool = False
    checksum: str = ""
    #: "torchscript", "aoti" or "onnx"; "" in manifests written before formats
    format: str = ""
    #: {"atol": A, "rtol": R}: how far this format's outputs may be from eager's; None: bit-exact
    tolerance: Optional[dict[str, float]] = None
    #: bounds of named dynamic dims: {"seq": {"min": 1, "max": 512}}
    dims: dict[str, dict[str, int]] = field(default_factory=dict)
    #: forward()'s non-tensor arguments with the value export used
    constants: dict[str, Any] = field(default_factory=dict)
    #: how the outputs nest (docs/artifact.md); None for a tensor or a flat tuple
    structure: Optional[Any] = None
    #: class names in output order (optional; [] when none)
    labels: list[str] = field(default_factory=list)
    #: a tabular model's input columns in input-vector order (optional; [] when none)
    features: list[FeatureSpec] = field(default_factory=list)
    #: TorchScript optimisation level at export: "none", "freeze" or "fast"; "" before levels
    optimize: str = ""

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    def output_names_for(self, count: int) -> list[str]:
        """The names of a call's ``count`` flat outputs, as the runtime gives
        them: a list per batch element names each element's (``output_*.boxes``
        -> ``output_0.boxes``, ``output_1.boxes``, ...). When ``count`` does not
        fit the structure, the outputs' names as listed.

            >>> manifest.output_names_for(6)
        """
        source = self.validated() if self.schema > 0 else getattr(self, "_source", None)
        try:
            return list(source.output_names_for(count)) if source is not None else self.output_names
        except TorchportError:
            return self.output_names

    @classmethod
    def from_native(cls, m: Any) -> "Manifest":
        """From a ``torchport._native.Manifest`` (already validated by the runtime)."""
        out = cls(
            name=m.name,
            inputs=[TensorSpec(s.name, s.dtype, s.shape, s.optional, tuple(s.data_dependent_dims),
                               ImageSpec.from_native(s.image)) for s in m.inputs],
            outputs=[TensorSpec(s.name, s.dtype, s.shape, s.optional, tuple(s.data_dependent_dims)) for s in m.outputs],
            schema=m.schema,
            torchport_version=m.torchport_version,
            torch_version=m.torch_version,
            export_method=m.export_method,
            created=m.created,
            metadata=json.loads(m.metadata_json),
            golden=m.has_golden,
            checksum=m.checksum,
            format=m.format,
            tolerance={"atol": m.atol, "rtol": m.rtol} if (m.atol or m.rtol) else None,
            dims={k: {"min": lo, "max": hi} for k, (lo, hi) in m.dim_bounds.items()},
            constants=json.loads(m.constants_json),
            structure=json.loads(m.structure_json) if m.structure_json else None,
            labels=list(m.labels),
            features=[FeatureSpec(f.name, f.type, tuple(f.vocabulary)) for f in m.features],
            optimize=m.optimize,
        )
        out._source = m  # a derived contract (schema 0) is written as the runtime derived it
        return out

    @classmethod
    def from_json(cls, text: str, where: str = "manifest") -> "Manifest":
        """Parses manifest JSON with the runtime's rules; raises BadArtifactError naming ``where``."""
        return cls.from_native(_native().Manifest.from_json(text, where=where))

    def _draft(self) -> str:
        # NaN stays NaN here, so that the runtime refuses it by name.
        return json.dumps(
            {
                "schema": self.schema,
                "name": self.name,
                "torchport_version": self.torchport_version,
                "torch_version": self.torch_version,
                "export_method": self.export_method,
                "created": self.created,
                "inputs": [_spec(s) for s in self.inputs],
                "outputs": [_spec(s) for s in self.outputs],
                "metadata": self.metadata,
                "golden": self.golden,
                **({"checksum": self.checksum} if self.checksum else {}),
                **({"format": self.format} if self.format else {}),
                **({"tolerance": self.tolerance} if self.tolerance is not None else {}),
                **({"dims": self.dims} if self.dims else {}),
                **({"constants": self.constants} if self.constants else {}),
                **({"structure": self.structure} if self.structure is not None else {}),
                **({"labels": list(self.labels)} if self.labels else {}),
                **({"features": [f.to_dict() for f in self.features]} if self.features else {}),
                **({"optimize": self.optimize} if self.optimize else {}),
            }
        )

    def validated(self, where: str = "manifest") -> Any:
        """The runtime's parsed manifest for this one; raises BadArtifactError
        with the runtime's reason when it would refuse it."""
        return _native().Manifest.from_json(self._draft(), where=where)

    def to_json(self, indent: Optional[int] = 2) -> str:
        """The manifest as the runtime writes it."""
        source = self.validated() if self.schema > 0 else getattr(self, "_source", None)
        if source is None:
            raise ValueError("a derived contract (schema 0) is written only as read from its artifact")
        return source.to_json(indent=-1 if indent is None else indent)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())


def _spec(s: TensorSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": s.name, "dtype": s.dtype, "shape": None if s.shape is None else list(s.shape)}
    if s.optional:
        out["optional"] = True
    if s.data_dependent:
        out["data_dependent"] = list(s.data_dependent)
    if s.image is not None:
        out["image"] = s.image.to_dict()
    return out


def read_manifest(path: Union[str, Path]) -> Manifest:
    """The manifest stored in an artifact, read and validated by the runtime.

    A plain TorchScript file without one gets the contract derived from its
    ``forward`` schema (``schema == 0``; dtypes and shapes unknown).

        >>> read_manifest("model.pt").input_names
        ['image']
    """
    # Every format, ONNX included (its metadata_props), through the runtime's one reader.
    return Manifest.from_native(_native().inspect(str(path), checksum=False).manifest)


def payload_checksum(archive: bytes) -> str:
    """The payload checksum of artifact bytes (TorchScript, .pt2 or .pte),
    computed by the runtime as it verifies it at load: every record but the
    manifest and the per-save serialization id, then the manifest without its
    checksum field (see docs/artifact.md)."""
    return _native().payload_checksum(archive)


def read_golden(path: Union[str, Path]) -> tuple[list[Any], list[Any]]:
    """The golden ``(inputs, outputs)`` stored in an artifact at export, read by the runtime."""
    inputs, outputs = _native().read_golden(str(path))
    return list(inputs), list(outputs)
