"""What the reports of torchport (parity, localisation, Triton checks) share:
the plain-text table they print, and the verdict over their rows."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(head: Sequence[object], body: Sequence[Sequence[object]], indent: str = "") -> list[str]:
    """Rows padded to a common width under a dashed rule, as lines."""
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]

    def line(cells) -> str:
        return (indent + "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))).rstrip()

    return [line(head), line(["-" * w for w in widths]), *(line(row) for row in body)]


class RowVerdict:
    """``ok`` and ``bit_exact`` over ``self.rows``: true only when there are rows and every row is."""

    rows: list

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows)

    @property
    def bit_exact(self) -> bool:
        return bool(self.rows) and all(r.bit_exact for r in self.rows)
