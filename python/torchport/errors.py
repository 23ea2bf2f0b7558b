"""Exceptions raised by torchport, in Python and from the C++ runtime.

The C++ runtime's ``torchport::Error`` kinds map one to one onto these classes
(the binding raises them), and the command lines map them onto exit codes.
"""

from __future__ import annotations


class TorchportError(Exception):
    """Base class of every error torchport raises on purpose."""

    exit_code = 5


class ArtifactNotFoundError(TorchportError, FileNotFoundError):
    """The artifact (or an input file) does not exist."""

    exit_code = 3


class BadArtifactError(TorchportError, ValueError):
    """The artifact cannot be read, or its manifest or golden file is invalid."""

    exit_code = 3


class BadInputError(TorchportError, ValueError):
    """Inputs do not match the model's contract (count, name, dtype, shape, device)."""

    exit_code = 4


class BadOptionError(TorchportError, ValueError):
    """An option or argument is invalid."""

    exit_code = 2


class ModelRuntimeError(TorchportError, RuntimeError):
    """The model itself failed while running."""

    exit_code = 5


class ExportError(TorchportError):
    """The model could not be compiled to TorchScript (scripting or tracing failed)."""

    exit_code = 5


class NativeUnavailableError(TorchportError, ImportError):
    """The C++ runtime (torchport._native or torchport-run) is not installed."""

    exit_code = 5


class DataError(TorchportError, ValueError):
    """A dataset cannot be read: a missing or non-numeric CSV column, an empty image folder."""

    exit_code = 4


class CheckpointError(TorchportError, ValueError):
    """A checkpoint is missing, unreadable, or from an incompatible torchport version."""

    exit_code = 3
