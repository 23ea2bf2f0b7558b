"""The one way torchport writes a file, from Python: the C++ runtime's writer
(``torchport::write_file``). The bytes go to an unnamed file beside the
destination, are flushed to disk and then put in place, so a reader or a crash
sees the old file or the complete new one, and a killed writer leaves nothing
behind. Without ``overwrite`` an existing file (or link) is never replaced,
even by two writers racing."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Callable, Union


def write_atomically(path: Union[str, Path], write: Callable[[BinaryIO], None], *, overwrite: bool = True) -> Path:
    """Calls ``write(f)`` on an in-memory buffer, then writes it to ``path`` atomically.

        >>> write_atomically("out.pt", lambda f: torch.save(tensor, f))
    """
    buf = io.BytesIO()
    write(buf)
    return write_bytes(path, buf.getvalue(), overwrite=overwrite)


def write_bytes(path: Union[str, Path], data: bytes, *, overwrite: bool = False) -> Path:
    """Writes ``data`` to ``path`` with the runtime's writer; raises BadOptionError
    if ``path`` exists and ``overwrite`` is false, OutputError if writing fails."""
    from torchport._ext import load_native

    load_native().write_file(str(path), data, overwrite=overwrite)
    return Path(path)
