"""torchport's records in an ONNX model's metadata_props: their keys and the
test of whether a file is an ONNX model (the runtime reads the records:
``read_manifest``, ``read_golden``; ``formats.onnx`` writes them)."""

from __future__ import annotations

import os
from pathlib import Path

from torchport._ext import load_native
from torchport.errors import BadOptionError

MANIFEST_FILE: str = load_native().MANIFEST_FILE
GOLDEN_FILE: str = load_native().GOLDEN_FILE

ONNX_MANIFEST_KEY = MANIFEST_FILE
ONNX_GOLDEN_KEY = GOLDEN_FILE
#: an ONNX model larger than protobuf's own limit is not read as one
_ONNX_MAX_BYTES = 2 << 30


def _onnx():
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError as e:
        raise BadOptionError(f"format 'onnx' needs the onnx package ({e}): pip install 'torchport[onnx]'") from None
    return onnx


def is_onnx(path: Path) -> bool:
    """A regular file, not a zip, that starts like a ModelProto (field 1,
    ir_version) and parses as an ONNX model (needs the onnx package). Anything
    else is left to the runtime's reader, which names what is wrong with it."""
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return False
    # Never opened: a FIFO or device could block, and the runtime refuses them by name.
    if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= _ONNX_MAX_BYTES:
        return False
    with open(path, "rb") as f:
        if f.read(1) != b"\x08":
            return False
    try:
        onnx = _onnx()
    except BadOptionError:
        return False
    try:
        onnx.load(str(path), load_external_data=False)
        return True
    except Exception:  # noqa: BLE001 - protobuf raises several types
        return False
