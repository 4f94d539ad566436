"""Deterministic sharding of benchmark grids for CI matrix jobs (`--idrift-shard i/n`).

A sample belongs to shard `int(spec_key, 16) % n`: the spec hash is uniform, stable across machines
and Python versions, and independent of collection order, so the union of the n shards is the full
grid with no overlap. Trajectory samples are sharded by their trajectory run, so that one run still
serves all of its steps.
"""

from __future__ import annotations

from idrift.errors import IdriftError


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise IdriftError(f"--idrift-shard must look like i/n (for example 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise IdriftError(f"--idrift-shard {text}: need n >= 1 and 0 <= i < n")
    return i, n


def in_shard(spec_key: str, index: int, count: int) -> bool:
    return int(spec_key, 16) % count == index
