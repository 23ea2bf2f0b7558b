"""What Triton's PyTorch backend can call: ``forward``'s tensor arguments and flat
tensor outputs, read from the TorchScript file after the runtime has checked it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Union

from torchport._warnings import quiet_jit
from torchport.errors import BadArtifactError


def _load_script(path: Union[str, Path]):
    import torch

    from torchport._ext import load_native

    # The runtime's reader checks the file first (regular file, zip and pickle
    # limits, checksum), so torch.jit.load below only ever sees a checked file.
    load_native().inspect(str(path))
    # torch.jit.load warns that TorchScript is deprecated in this torch; it is
    # the format Triton's PyTorch backend loads, so silence exactly that.
    with quiet_jit():
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as e:  # noqa: BLE001 - torch raises many types for bad archives
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BadArtifactError(f"'{path}' is not a loadable TorchScript archive: {first}") from None


def forward_arguments(path: Union[str, Path]) -> list[str]:
    """The names of ``forward``'s arguments, after refusing what Triton's PyTorch
    backend cannot call: arguments that are not tensors, and outputs that are not a
    tensor or a flat tuple of tensors (the backend maps outputs by position)."""
    try:
        st = Path(path).stat()
    except OSError:
        return list(_forward_arguments(str(path), 0, 0, 0))  # the loader says what is wrong
    # Loading a TorchScript file costs; the check asks several times about the same file.
    return list(_forward_arguments(str(path), st.st_ino, st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=32)
def _forward_arguments(path: str, inode: int, size: int, mtime_ns: int) -> tuple[str, ...]:
    import torch

    schema = _load_script(path).forward.schema
    args = schema.arguments[1:]  # after self
    for a in args:
        if not isinstance(a.type, torch.TensorType):
            raise BadArtifactError(
                f"'{path}': forward's argument '{a.name}' is {a.type}, not a tensor; Triton's PyTorch backend "
                "passes only tensors to forward (or one Dict[str, Tensor], which torchport's contract does not "
                "describe). Make it a tensor input, or a constant inside the model, and re-export"
            )
    if len(schema.returns) != 1:
        raise BadArtifactError(f"'{path}': forward returns {len(schema.returns)} values; expected one tensor or a tuple")
    ret = schema.returns[0].type
    flat = isinstance(ret, torch.TensorType) or (
        isinstance(ret, torch.TupleType) and all(isinstance(e, torch.TensorType) for e in ret.elements())
    )
    if not flat:
        raise BadArtifactError(
            f"'{path}': forward returns {ret}, a structured output whose tensors would need names flattened; "
            "Triton's PyTorch backend maps outputs by position in a flat tuple (<name>__<index>). "
            "Return a tensor or a flat tuple of tensors and re-export"
        )
    return tuple(a.name for a in args)
