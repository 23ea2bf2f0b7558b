"""The one way torchport writes a file, from Python: the C++ runtime's writer
(``torchport::write_file``). The bytes go to an unnamed file beside the
destination, are flushed to disk and then put in place, so a reader or a crash
sees the old file or the complete new one, and a killed writer leaves nothing
behind. Without ``overwrite`` an existing file (or link) is never replaced,
even by two writers racing."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import tempfile
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


# A temporary folder's name carries its writer's host and process id, so that a
# later run can tell the folder of a killed writer (swept) from a live one's
# (kept). A process id means something only on its own host: a folder made from
# another machine or container sharing the repository is never swept.
_TEMPORARY = re.compile(r"^\.(?P<tag>[^.]+)\.(?P<pid>\d+)-(?P<host>[A-Za-z0-9-]*)\.[^.]+\.tmp$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:64]


def temporary_folder(folder: Union[str, Path], tag: str) -> Path:
    """A new hidden folder ``.TAG.PID-HOST.XXXXXXXX.tmp`` in ``folder``, to be filled and
    renamed in whole; one a killed writer left behind is removed by ``sweep_temporaries``.

        >>> tmp = temporary_folder(model_dir, "3")  # model_dir/.3.4711-build01.k2j4x8ab.tmp
    """
    return Path(tempfile.mkdtemp(prefix=f".{tag}.{os.getpid()}-{_host()}.", suffix=".tmp", dir=folder))


def sweep_temporaries(folder: Union[str, Path]) -> list[Path]:
    """Removes the temporary folders of this host's writers that are no longer running; returns them."""
    swept, host = [], _host()
    for entry in Path(folder).iterdir():
        m = _TEMPORARY.match(entry.name)
        if m and m["host"] == host and entry.is_dir() and not entry.is_symlink() and not _running(int(m["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
            swept.append(entry)
    return swept


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or a pid no kernel has): leave its folder alone
    return True
