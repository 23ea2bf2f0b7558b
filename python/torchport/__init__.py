"""torchport: ship a PyTorch model to native code and prove it gives the same numbers.

    >>> import torch, torchport
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> path = torchport.export(model, torch.rand(3, 4), "mlp.pt")
    >>> torchport.NativeModel(path).run(torch.rand(5, 4))[0].shape
    torch.Size([5, 2])
    >>> print(torchport.verify(path, model=model))

Everything here is plain Python; only NativeModel (and verify's native rows)
need the compiled extension torchport._native.
"""

from pathlib import Path as _Path

from torchport._version import __version__
from torchport.errors import (
    ArtifactNotFoundError,
    BadArtifactError,
    BadInputError,
    BadOptionError,
    CheckpointError,
    DataError,
    ExportError,
    ModelRuntimeError,
    NativeUnavailableError,
    TorchportError,
)
from torchport.manifest import Manifest, TensorSpec, read_golden, read_manifest

#: Prefix for CMAKE_PREFIX_PATH so that find_package(torchport) finds this install.
cmake_prefix_path = str(_Path(__file__).resolve().parent / "share" / "cmake")


def __getattr__(name):
    # torch is imported only when something that needs it is used, so
    # `torchport inspect` and read_manifest stay quick.
    if name in ("export", "ExportWarning"):
        from torchport import exporter as _export

        return getattr(_export, name)
    if name in ("NativeModel",):
        from torchport.native import NativeModel

        return NativeModel
    if name in ("verify", "ParityReport", "ParityRow"):
        from torchport import parity

        return getattr(parity, name)
    if name in ("localize", "LocalizeReport"):
        from torchport import localizer as _localizer

        return getattr(_localizer, name)
    raise AttributeError(f"module 'torchport' has no attribute {name!r}")


__all__ = [
    "ArtifactNotFoundError",
    "BadArtifactError",
    "BadInputError",
    "BadOptionError",
    "CheckpointError",
    "DataError",
    "ExportError",
    "ExportWarning",
    "LocalizeReport",
    "Manifest",
    "ModelRuntimeError",
    "NativeModel",
    "NativeUnavailableError",
    "ParityReport",
    "ParityRow",
    "TensorSpec",
    "TorchportError",
    "__version__",
    "cmake_prefix_path",
    "export",
    "localize",
    "read_golden",
    "read_manifest",
    "verify",
]
