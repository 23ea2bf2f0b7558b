"""The one way torchport replaces a file: written in full beside the destination,
flushed to disk, then renamed over it. A reader, or a crash at any point, sees
the old file or the complete new one, never a part."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union


def write_atomically(path: Union[str, Path], write: Callable[[BinaryIO], None]) -> Path:
    """Calls ``write(f)`` on a temporary file beside ``path``, then renames it to ``path``.

        >>> write_atomically("out.pt", lambda f: torch.save(tensor, f))
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file private (0600); give it the permissions a
        # plain open() would, so other users can read an artifact as before.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
