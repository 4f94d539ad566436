"""Merging stores (e.g. CI shards) into one, refusing two different results for one spec key."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from idrift.store.records import SampleRecord, atomic_copy, image_problem
from idrift.store.results import ResultsStore
from idrift.store.schema import MergeConflictError, _dumps

# spec key -> (the sample kept, the store it came from)
Samples = dict[str, tuple[SampleRecord, Path]]

def merge_stores(sources: Iterable[str | os.PathLike], out: str | os.PathLike) -> dict[str, int]:
    """Combine stores (e.g. CI shards) into `out` (new or existing). Returns counts of what was added.

    A spec key present in several places must agree on status and image hash, and each metric on
    version and values; otherwise nothing is written and `MergeConflictError` names the key, the
    field and both stores. Unfinished samples (image missing) are skipped.
    """
    sources = [Path(s) for s in sources]
    if not sources:
        raise ValueError("merge_stores: give at least one source store")
    out_path = Path(out)
    if any(s.resolve() == out_path.resolve() for s in sources if s.exists()):
        raise ValueError(f"merge_stores: the output {out_path} is also a source; write to a new folder")

    target = ResultsStore(out_path)
    try:
        runs, samples = _gather(target, out_path, sources)
        _refuse_changed_images(samples, out_path)
        # Images first (atomic), rows after, all rows in one transaction.
        for key, (rec, origin) in samples.items():
            if origin != out_path and rec.image_path is not None:
                atomic_copy(rec.image_path, target.image_path(key))
        return _write_rows(target, runs, samples)
    finally:
        target.close()


def _gather(target: ResultsStore, out_path: Path, sources: list[Path]) -> tuple[dict[str, sqlite3.Row], Samples]:
    """The runs the output lacks and every sample with the store it came from (the output itself for
    those it holds), checking that a key seen twice holds the same result."""
    runs: dict[str, sqlite3.Row] = {}
    samples: Samples = {rec.spec_key: (rec, out_path) for rec in target.samples(status=None)}
    existing_runs = {r["run_id"] for r in target.runs()}
    for src in sources:
        store = ResultsStore(src, readonly=True)
        try:
            for row in store._read(lambda c: c.execute("SELECT * FROM runs").fetchall()):
                if row["run_id"] not in existing_runs:
                    runs.setdefault(row["run_id"], row)
            for rec in store.samples(status=None):
                seen = samples.get(rec.spec_key)
                if seen is None:
                    samples[rec.spec_key] = (rec, src)
                else:
                    _check_same(seen[0], seen[1], rec, src)
                    # Keep the union of metrics, so a later store may add metrics another lacks.
                    merged = dict(seen[0].metrics)
                    merged.update(rec.metrics)
                    samples[rec.spec_key] = (dataclasses.replace(seen[0], metrics=merged), seen[1])
        finally:
            store.close()
    return runs, samples


def _refuse_changed_images(samples: Samples, out_path: Path) -> None:
    """Every image copied must be the one its row describes: a changed file is refused, not spread."""
    for key, (rec, origin) in samples.items():
        if origin != out_path and rec.image_path is not None:
            problem = image_problem(rec.image_path, rec.image_sha256)
            if isinstance(problem, str):
                raise MergeConflictError(
                    f"merge refused: image {rec.image_path} of spec key {key} in {origin}: {problem}; rerun "
                    f"that store's run to regenerate it (or delete the file), then merge again")


def _write_rows(target: ResultsStore, runs: dict[str, sqlite3.Row], samples: Samples) -> dict[str, int]:
    """Insert the new runs, samples and metrics into the output in one transaction; returns their counts."""
    existing = {r.spec_key: r for r in target.samples(status=None)}
    counts = {"runs": 0, "samples": 0, "metrics": 0}

    def write(c: sqlite3.Connection) -> None:
        for row in runs.values():
            c.execute(
                "INSERT INTO runs (run_id, started, finished, argv, provenance) VALUES (?, ?, ?, ?, ?)",
                (row["run_id"], row["started"], row["finished"], row["argv"], row["provenance"]),
            )
            counts["runs"] += 1
        for key, (rec, _origin) in samples.items():
            if key not in existing:
                _insert_sample(c, key, rec)
                counts["samples"] += 1
            have = existing[key].metrics if key in existing else {}
            for metric, m in rec.metrics.items():
                if metric in have:
                    continue
                c.execute(
                    'INSERT INTO metrics (spec_key, metric, version, "values", run_id, created)'
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (key, metric, m["version"], _dumps(m["values"], "metric values"), m["run_id"], m["created"]),
                )
                counts["metrics"] += 1

    target._write(write)
    return counts


def _insert_sample(c: sqlite3.Connection, key: str, rec: SampleRecord) -> None:
    # Clear an unfinished row (image lost) that the output may hold for this key.
    c.execute("DELETE FROM metrics WHERE spec_key = ?", (key,))
    c.execute("DELETE FROM samples WHERE spec_key = ?", (key,))
    c.execute(
        "INSERT INTO samples (spec_key, spec, status, error, image_sha256, stage_seconds,"
        " provenance, run_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key,
            _dumps(rec.spec, "spec"),
            rec.status,
            rec.error,
            rec.image_sha256,
            _dumps(rec.stage_seconds, "stage_seconds"),
            _dumps(rec.provenance, "provenance"),
            rec.run_id,
            rec.created,
        ),
    )


def _check_same(a: SampleRecord, a_src: Path, b: SampleRecord, b_src: Path) -> None:
    def conflict(what: str, va: Any, vb: Any) -> MergeConflictError:
        return MergeConflictError(
            f"merge refused: spec key {a.spec_key} has a different {what} in {a_src} ({va}) and in {b_src} "
            f"({vb}); the same spec must give the same result: find out which is right, remove the other, and "
            "merge again"
        )

    if a.status != b.status:
        raise conflict("status", a.status, b.status)
    if a.image_sha256 != b.image_sha256:
        raise conflict("image (pixel sha256)", a.image_sha256, b.image_sha256)
    for metric in sorted(set(a.metrics) & set(b.metrics)):
        ma, mb = a.metrics[metric], b.metrics[metric]
        if ma["version"] != mb["version"]:
            raise conflict(f"version of metric {metric!r}", ma["version"], mb["version"])
        if _dumps(ma["values"], "values") != _dumps(mb["values"], "values"):
            raise conflict(f"value of metric {metric!r}", _dumps(ma["values"], ""), _dumps(mb["values"], ""))
