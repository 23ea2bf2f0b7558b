"""``format="onnx"``: ``torch.onnx.export(dynamo=True)``; the manifest and golden
examples go into the model's ``metadata_props`` (``torchport/manifest.json``, and
``torchport/golden.pt`` base64-encoded). ONNX Runtime runs it from Python
(``pip install torchport[onnx]``), and the C++ runtime runs it through its ONNX
Runtime backend (the same library, loaded at run time).

    >>> torchport.export(model, x, "m.onnx", format="onnx")
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from torchport._ext import load_native
from torchport._onnx_records import ONNX_GOLDEN_KEY, ONNX_MANIFEST_KEY, _onnx
from torchport.errors import ExportError, NativeUnavailableError
from torchport.formats._capture import example, prepare_exported, shapes_for
from torchport.formats._core import (
    Format, Job, Outputs, Prepared, check_outputs, first_line, fixed_tolerance, scratch,
)
from torchport.manifest import Manifest

#: How far ONNX Runtime's outputs may be from eager's: the largest absolute
#: difference measured (benchmarks/formats.py, docs/artifact.md) was 3.6e-7, on
#: the transformer; atol is about 30x that, rtol as the other formats'.
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}


def export_onnx(job: Job, manifest: Manifest, golden: bytes) -> bytes:
    """The ONNX model (dynamo exporter) with the manifest and golden examples in its metadata_props."""
    onnx = _onnx()
    module, args = example(job)
    with scratch(job, "onnx") as tmp:
        try:
            # The exporter prints its progress; export's caller asked for a file, not a log.
            with contextlib.redirect_stdout(io.StringIO()):
                program = torch.onnx.export(
                    module, args, dynamo=True, dynamic_shapes=shapes_for(module, job),
                    input_names=job.names, output_names=job.output_names, verbose=False,
                )
            program.save(os.path.join(tmp, "model.onnx"))
        except Exception as e:  # noqa: BLE001 - the exporter raises many error types
            raise ExportError(f"torch.onnx.export could not export {job.model_name}: {first_line(e)}") from e
        proto = onnx.load(os.path.join(tmp, "model.onnx"))
    for key in (ONNX_MANIFEST_KEY, ONNX_GOLDEN_KEY):
        for i in reversed(range(len(proto.metadata_props))):
            if proto.metadata_props[i].key == key:
                del proto.metadata_props[i]
    proto.metadata_props.add(key=ONNX_MANIFEST_KEY, value=manifest.to_json())
    proto.metadata_props.add(key=ONNX_GOLDEN_KEY, value=base64.b64encode(golden).decode("ascii"))
    return proto.SerializeToString()


def onnxruntime_session(path: Any, threads: int = 1):
    """An ONNX Runtime CPU session on ``path`` (a file or bytes), ``threads`` intra-op threads.
    A file is read by the runtime's reader first: it refuses what the C++ runtime
    refuses (a tensor whose data lives in another file, which ONNX Runtime would read)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise NativeUnavailableError(f"onnxruntime is not installed ({e}): pip install 'torchport[onnx]'") from None
    if not isinstance(path, bytes):
        load_native().inspect(str(path), checksum=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path), options,
                                providers=["CPUExecutionProvider"])


def run_onnxruntime(session, inputs) -> tuple[torch.Tensor, ...]:
    """Runs a session on tensors in input order; outputs as tensors."""
    feed = {i.name: t.detach().cpu().contiguous().numpy() for i, t in zip(session.get_inputs(), inputs)}
    return tuple(torch.from_numpy(o) for o in session.run(None, feed))


def _prepare(job: Job) -> Prepared:
    return prepare_exported(job, "torch.onnx.export", TOLERANCE)


def _build(job: Job, prepared: Prepared, manifest: Manifest, golden: bytes) -> bytes:
    return export_onnx(job, manifest, golden)


def _check(job: Job, data: bytes, manifest: Manifest) -> None:
    """ONNX Runtime on the bytes reproduces the golden outputs; the records read back."""
    proto = _onnx().load_from_string(data)
    props = {p.key: p.value for p in proto.metadata_props}
    Manifest.from_json(props[ONNX_MANIFEST_KEY], f"{job.path} torchport/manifest.json")
    inputs, outputs = load_native().read_golden_bytes(base64.b64decode(props[ONNX_GOLDEN_KEY]), str(job.path))
    check_outputs("ONNX Runtime", outputs, run_onnxruntime(onnxruntime_session(data), inputs), manifest.tolerance)


def run_file(path: Path, inputs: Sequence[torch.Tensor]) -> Outputs:
    """The file through ONNX Runtime's Python API (export's cross-check)."""
    return run_onnxruntime(onnxruntime_session(path), inputs)


FORMAT = Format(
    name="onnx", title="ONNX", suffix=".onnx",
    prepare=_prepare, build=_build, check=_check, run_file=run_file, tolerance=fixed_tolerance(TOLERANCE),
)
