"""The one Python face of the C++ output comparison (contract layer):
``torchport::compare_outputs`` through the binding, as ``ParityRow``s. Parity,
tune, the format checks and the Triton check all judge outputs here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from torchport._ext import load_native


@dataclass
class ParityRow:
    """One output of one runtime against the reference."""

    runtime: str
    output: str
    shape: Optional[list[int]]
    dtype: Optional[str]
    max_abs_diff: float
    max_rel_diff: float
    bit_exact: bool
    ok: bool
    error: str = ""



def compare(
    runtime: str, names: Sequence[str], expected: Sequence[torch.Tensor], got: Sequence[torch.Tensor], atol: float, rtol: float
) -> list[ParityRow]:
    """Rows comparing ``got`` with ``expected`` output by output, judged by the
    runtime's one comparison (``torchport::compare_outputs``)."""
    if len(got) != len(expected):
        return [ParityRow(runtime, "*", None, None, float("inf"), float("inf"), False, False,
                          f"returned {len(got)} outputs, expected {len(expected)}")]
    rows = []
    for c in load_native().compare_outputs(list(names), list(expected), [g.detach() for g in got], atol=atol, rtol=rtol):
        row = ParityRow(runtime, c.output, list(c.got_shape), c.got_dtype, c.max_abs_diff, c.max_rel_diff,
                        c.bit_exact, c.ok)
        if c.got_shape != c.expected_shape or c.got_dtype != c.expected_dtype:
            row.error = f"{c.output}: expected {c.expected_dtype}{c.expected_shape}, got {c.got_dtype}{c.got_shape}"
        rows.append(row)
    return rows
