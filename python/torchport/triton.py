"""``torchport.triton``, the first import path of the serve layer: the names of
``torchport.serve`` (Triton model repositories, ``export_triton``, ``check_triton``).

    >>> from torchport.triton import export_triton, check_triton
"""

from torchport import serve as _serve
from torchport.serve import *  # noqa: F401,F403 - serve's public names (serve.__all__)

__all__ = list(_serve.__all__)


def __getattr__(name: str):
    # The rest of serve's names (MODEL_FILE, CONFIG_FILE, ...), as `torchport.triton.X` gave them.
    return getattr(_serve, name)
