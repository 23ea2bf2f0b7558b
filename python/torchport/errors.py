"""Exceptions raised by torchport, in Python and from the C++ runtime.

Every class has a ``kind``, the name of a ``torchport::ErrorKind``; the C++
runtime raises these classes through the binding, and the exit code of a
command that stops on one comes from the runtime's one table
(``torchport._native.EXIT_CODES``, documented in docs/runtime.md), so
``torchport`` and ``torchport-run`` agree.
"""

from __future__ import annotations

# Used only when the extension itself is missing (NativeUnavailableError):
# the table cannot be read then. tests/test_errors.py checks it against the table.
_UNAVAILABLE_EXIT_CODE = 10


def exit_code_of(kind: str) -> int:
    """The runtime's exit code for an error kind name (``"bad_input"`` -> 4)."""
    try:
        import torch  # noqa: F401 - loads libtorch before the extension binds to it

        from torchport import _native
    except ImportError:
        return _UNAVAILABLE_EXIT_CODE
    return dict(_native.EXIT_CODES)[kind]


class TorchportError(Exception):
    """Base class of every error torchport raises on purpose."""

    kind = "runtime"

    @property
    def exit_code(self) -> int:
        return exit_code_of(self.kind)


class ArtifactNotFoundError(TorchportError, FileNotFoundError):
    """The artifact does not exist."""

    kind = "not_found"


class BadArtifactError(TorchportError, ValueError):
    """The artifact cannot be read, or its manifest or golden file is invalid."""

    kind = "bad_artifact"


class BadInputError(TorchportError, ValueError):
    """Inputs (or an input file) do not match the model's contract."""

    kind = "bad_input"


class BadOptionError(TorchportError, ValueError):
    """An option or argument is invalid."""

    kind = "bad_option"


class ModelRuntimeError(TorchportError, RuntimeError):
    """The model itself failed while running."""

    kind = "runtime"


class ExportError(TorchportError):
    """The model could not be exported (compiling failed, or the runtime would refuse the result)."""

    kind = "export"


class DataError(TorchportError, ValueError):
    """A dataset cannot be read: a missing or non-numeric CSV column, an empty image folder."""

    kind = "data"


class CheckpointError(TorchportError, ValueError):
    """A checkpoint is missing, unreadable, or from an incompatible torchport version."""

    kind = "checkpoint"


class OutputError(TorchportError, OSError):
    """An output file could not be written (disk full, no permission)."""

    kind = "output"


class NativeUnavailableError(TorchportError, ImportError):
    """The C++ runtime (torchport._native or torchport-run) is not installed."""

    kind = "unavailable"


class ExportWarning(UserWarning):
    """Export did something the caller should know about (such as falling back to tracing)."""
