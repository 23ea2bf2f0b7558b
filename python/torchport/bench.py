"""``torchport bench`` as users import it (top layer): ``torchport.benchmark``
(the verify layer, which takes the eager model as a function) with the eager
contender rebuilt from a training checkpoint (the train layer).

    >>> print(bench("model.pt", batches=[1, 32], checkpoint="runs/cnn/checkpoint.pt"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from torchport.benchmark import RUNTIMES, BenchReport, BenchRow, batched_inputs  # noqa: F401 - re-exported
from torchport.benchmark import bench as _bench


def bench(artifact: Union[str, Path], *, checkpoint: Optional[Union[str, Path]] = None, **options: Any) -> BenchReport:
    """``torchport.benchmark.bench`` on ``artifact``, the ``eager`` contender being
    ``checkpoint`` rebuilt with the postprocess the artifact's manifest records."""
    eager = None
    if checkpoint is not None:
        from torchport.checkpoint import model_from_checkpoint

        def eager():
            return model_from_checkpoint(str(checkpoint), str(artifact))
    return _bench(artifact, eager=eager, **options)
