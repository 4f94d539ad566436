"""Repeated lines printed once with a count: a note that 68 rows share reads as one line ending "(x68)"."""

from __future__ import annotations

from collections.abc import Iterable


def counted(lines: Iterable[str]) -> list[str]:
    """Each distinct line once, in first-seen order, with " (xN)" appended where it occurred N > 1 times.

    >>> counted(["a", "b", "a"])
    ['a (x2)', 'b']
    """
    seen: dict[str, int] = {}
    for line in lines:
        seen[line] = seen.get(line, 0) + 1
    return [line if n == 1 else f"{line} (x{n})" for line, n in seen.items()]
