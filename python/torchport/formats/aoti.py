"""``format="aoti"``: ``torch.export.export`` with the manifest's dynamic dims as
``torch.export.Dim``s, then ``torch._inductor.aoti_compile_and_package`` with CPU
freezing on. torchport's records go under the package's ``torchport/`` (which
AOTInductor's loaders ignore; torch's Python loader would read ``extra/`` as
text), with a payload checksum like the TorchScript one. The C++ runtime loads
it like any artifact; it tells the formats apart by content.

    >>> torchport.export(model, x, "m.pt2", format="aoti")
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import torch

from torchport.errors import ExportError
from torchport.formats._capture import capture, prepare_exported
from torchport.formats._core import (
    COMPILE_KEY, GOLDEN_FILE, MANIFEST_FILE, Format, Job, Prepared, first_line, fixed_tolerance,
    native_check, run_native_file, scratch,
)
from torchport.manifest import Manifest, payload_checksum

#: Inductor settings for the package: weights frozen into the compiled graph (CPU).
INDUCTOR_CONFIGS = {"freezing": True}
#: How far its outputs may be from eager's (the golden outputs). Measured on the
#: zoo's families and a ResNet-18 (benchmarks/formats.py, figures in
#: docs/artifact.md), the largest absolute difference from eager was 3.0e-7, on
#: the transformer; atol is about 30x that, and rtol 1e-4 leaves room for trained
#: weights whose outputs are larger than these randomly initialised ones.
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}


def _repack(package: bytes, extra: dict[str, bytes]) -> bytes:
    """The package's records plus ``extra`` (by record name), in a new PT2 archive."""
    from torch.export.pt2_archive._package import PT2ArchiveWriter

    reader = torch._C.PyTorchFileReader(io.BytesIO(package))
    out = io.BytesIO()
    with PT2ArchiveWriter(out) as writer:
        for name in sorted(reader.get_all_records()):
            # The writer adds its own version, byte order and serialization id.
            if name.startswith(".data/") or writer.has_record(name):
                continue
            writer.write_bytes(name, reader.get_record(name))
        for name, data in extra.items():
            writer.write_bytes(name, data)
    return out.getvalue()


def compile_aoti(job: Job) -> tuple[bytes, float]:
    """(package bytes, compile seconds): torch.export, then AOTInductor with freezing."""
    program = capture(job)
    with scratch(job, "aoti") as tmp:
        start = time.perf_counter()
        try:
            package = torch._inductor.aoti_compile_and_package(
                program, package_path=os.path.join(tmp, "model.pt2"), inductor_configs=dict(INDUCTOR_CONFIGS)
            )
        except Exception as e:  # noqa: BLE001 - Inductor raises many error types
            raise ExportError(f"AOTInductor could not compile {job.model_name}: {first_line(e)}") from e
        seconds = time.perf_counter() - start
        return Path(package).read_bytes(), seconds


def package_aoti(package: bytes, manifest: Manifest, golden: bytes) -> bytes:
    """The package with torchport's records inside and the payload checksum in the manifest."""
    # The checksum covers the records and the manifest without its checksum
    # field (the runtime's rule), so it is taken from a first packing whose
    # manifest has none yet; the records do not change between packings.
    manifest.checksum = ""
    manifest.checksum = payload_checksum(_repack(package, {MANIFEST_FILE: manifest.to_json().encode(),
                                                           GOLDEN_FILE: golden}))
    data = _repack(package, {MANIFEST_FILE: manifest.to_json().encode(), GOLDEN_FILE: golden})
    if payload_checksum(data) != manifest.checksum:
        raise ExportError("the .pt2 package's records changed between two packings; cannot checksum the payload")
    return data


def _prepare(job: Job) -> Prepared:
    return prepare_exported(job, "torch.export", TOLERANCE)


def _build(job: Job, prepared: Prepared, manifest: Manifest, golden: bytes) -> bytes:
    package, seconds = compile_aoti(job)
    manifest.metadata[COMPILE_KEY] = {
        "seconds": round(seconds, 2), "torch": torch.__version__, "inductor_configs": INDUCTOR_CONFIGS,
    }
    return package_aoti(package, manifest, golden)


FORMAT = Format(
    name="aoti", title="AOTInductor .pt2", suffix=".pt2",
    prepare=_prepare, build=_build, check=native_check("aoti"), run_file=run_native_file,
    tolerance=fixed_tolerance(TOLERANCE),
)
