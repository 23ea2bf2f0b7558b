"""Pictures as applications hold them: uint8 ``[B, H, W, 3]`` RGB of any size.

An image model trained by torchport takes such pictures, and its graph does the rest,
in this order (the manifest's input ``image`` contract, docs/artifact.md):

1. HWC -> CHW, as float32;
2. a bilinear resize to the trained ``size`` (``align_corners=False``, no antialias);
3. division by 255, to [0, 1];
4. ``(x - mean) / std`` per channel (``Pipeline``), then the network.

Steps 1-3 are ``ImageFront``, one function that training applies to every decoded
picture and that the exported graph applies to every input, so the two cannot differ.
Training decodes files with the runtime's decoder (stb_image, through the binding),
the same as ``torchport-run predict --input x.png``.

    >>> front = ImageFront((32, 32))
    >>> front(torch.zeros(1, 48, 64, 3, dtype=torch.uint8)).shape
    torch.Size([1, 3, 32, 32])
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

#: the resize the graph does (and the manifest records)
RESIZE = "bilinear"


class ImageFront(nn.Module):
    """uint8 ``[B, H, W, 3]`` RGB of any H, W -> float32 ``[B, 3, h, w]`` in [0, 1]."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = [int(size[0]), int(size[1])]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32)  # [B, 3, H, W], 0..255
        x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=False)  # [B, 3, h, w]
        return x / 255.0


class ImagePipeline(nn.Module):
    """``ImageFront`` then a trained ``Pipeline`` (normalisation, network, postprocess):
    what an image checkpoint exports, taking uint8 ``[B, H, W, 3]``."""

    def __init__(self, front: ImageFront, pipeline: nn.Module) -> None:
        super().__init__()
        self.front = front
        self.pipeline = pipeline

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.pipeline(self.front(image))


def read_image(path: Union[str, Path]) -> torch.Tensor:
    """A PNG/JPEG file as uint8 ``[1, H, W, 3]`` RGB, decoded by the runtime (the
    decoder ``torchport-run predict --input`` uses); DataError naming the file when
    it cannot be read."""
    from torchport.errors import DataError, TorchportError
    from torchport.native import read_tensor_file

    try:
        image = read_tensor_file(path)
    except TorchportError as e:
        raise DataError(f"image '{path}' cannot be read: {e}") from None
    # The reader goes by content: a tensor file named .png is read, but it is no picture.
    if not (isinstance(image, list) and len(image) == 1 and image[0].dtype == torch.uint8 and image[0].dim() == 4
            and image[0].shape[0] == 1 and image[0].shape[3] == 3):
        raise DataError(f"image '{path}' is not a PNG or JPEG picture; expected one, decoded as uint8 [1, H, W, 3]")
    return image[0]


__all__ = ["RESIZE", "ImageFront", "ImagePipeline", "read_image"]
