"""The one warning filter (core layer): ``torch.jit.script/trace/save/load`` emit
"`torch.jit.X` is deprecated" in this torch; TorchScript is a format torchport
ships, so exactly that warning is silenced around those calls."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

JIT_DEPRECATION = r"`torch\.jit\.\w+` is deprecated"


@contextlib.contextmanager
def quiet_jit() -> Iterator[None]:
    """A block in which the jit deprecation warning (and only it) is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=JIT_DEPRECATION, category=DeprecationWarning)
        yield


def jit(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with the jit deprecation warning silenced."""
    with quiet_jit():
        return fn(*args, **kwargs)
