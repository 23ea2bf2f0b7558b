"""The compiled extension ``torchport._native``, loaded in one place (core layer)."""

from __future__ import annotations

from torchport.errors import NativeUnavailableError


def load_native():
    """The ``torchport._native`` module, or a clear error when it was not built."""
    try:
        # torch first: it loads libtorch from its own wheel, and the extension then
        # binds to that same copy rather than resolving one through its rpath alone.
        import torch  # noqa: F401

        from torchport import _native
    except ImportError as e:
        raise NativeUnavailableError(
            f"the torchport C++ runtime (torchport._native) is not available: {e}. "
            "Install torchport with its extension: pip install --no-build-isolation . (or run make)"
        ) from e
    return _native
