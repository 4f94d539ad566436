"""ResultsStore: the store folder, its transactions, and the samples and metrics in it."""

from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Any

from PIL import Image

from idrift.config import RunSpec
from idrift.store.leases import Leases
from idrift.store.records import SampleRecord, atomic_write, image_problem, image_sha256
from idrift.store.runs import Runs
from idrift.store.schema import (
    DB_NAME,
    IMAGES_DIR,
    SPEC_FIELDS,
    STATUSES,
    StoreError,
    _connect,
    _disk_error,
    _dumps,
    _now,
    _retry_busy,
    check_schema,
)


class ResultsStore(Leases, Runs):
    """A results store in folder `path` (created if missing).

    Args:
        path: the store folder; it gets `results.sqlite` and `images/`.
        readonly: open an existing store without writing anything (used by `merge_stores`).

    One instance per process (open it after forking). Writes start a run on first use, recorded with
    `sys.argv`; call `start_run(argv, provenance)` first to record more, and `finish_run()` (or use the
    store as a context manager) to stamp its end. A run left unfinished was interrupted.
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = False) -> None:
        self.path = Path(path)
        self.db_path = self.path / DB_NAME
        self.images_dir = self.path / IMAGES_DIR
        self.readonly = readonly
        self.run_id: str | None = None
        self._verified: set[str] = set()  # spec keys whose image file this process checked or wrote
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # of this process's leases
        if readonly:
            if not self.db_path.is_file():
                raise StoreError(f"no results store at {self.path} (expected {self.db_path})")
        else:
            self._prepare_folder()
        self._conn: sqlite3.Connection | None = None
        try:
            self._conn = _connect(self.db_path, readonly)
            _retry_busy(self._check_schema, f"opening {self.db_path}")
        except StoreError:
            self.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(
                f"{self.db_path} is not a usable SQLite database ({exc}); point the store at an empty "
                "folder or at a folder written by idrift"
            ) from exc

    # -- opening ----------------------------------------------------------------------------------

    def _prepare_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"results store path {self.path} exists and is not a folder; pass a folder path")
        try:
            self.images_dir.mkdir(parents=True, exist_ok=True)
            # Probe: mkdir succeeds on an existing read-only folder, writing does not.
            fd, probe = tempfile.mkstemp(dir=self.images_dir, prefix=".probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StoreError(
                f"results store folder {self.path} is not writable ({exc.strerror or exc}); "
                "choose a folder you can write to (--idrift-store DIR, or another `idrift run --out DIR`)"
            ) from exc

    def _check_schema(self) -> None:
        check_schema(self._conn, self.db_path, self.readonly)

    def close(self) -> None:
        if getattr(self, "_conn", None) is not None and not self.readonly:
            try:
                self.release_leases()
            except (StoreError, sqlite3.Error):
                pass  # expired or freed by the next process anyway
        if getattr(self, "_conn", None) is not None:
            self._conn.close()
            self._conn = None  # type: ignore[assignment]

    def __enter__(self):  # -> ResultsStore
        return self

    def __exit__(self, *exc: object) -> None:
        if self.run_id is not None and not self.readonly:
            self.finish_run()
        self.close()

    # -- transactions -----------------------------------------------------------------------------

    def _write(self, fn) -> Any:
        """Run fn(conn) in one BEGIN IMMEDIATE transaction (takes the write lock up front, so two
        writers never deadlock upgrading read locks)."""
        if self.readonly:
            raise StoreError(f"store {self.path} was opened read-only")
        conn = self._conn

        def attempt() -> Any:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        try:
            return _retry_busy(attempt, f"writing {self.db_path}")
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "full" in text or "readonly" in text or "read-only" in text or "disk i/o" in text:
                raise _disk_error(self.db_path, exc) from None
            raise

    def _read(self, fn) -> Any:
        """Run fn(conn) in one read transaction: a consistent snapshot, retried while busy."""
        conn = self._conn

        def attempt() -> Any:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

        return _retry_busy(attempt, f"reading {self.db_path}")

    # -- samples ----------------------------------------------------------------------------------

    def image_path(self, spec_key: str) -> Path:
        return self.images_dir / f"{spec_key}.png"

    def _write_image(self, spec_key: str, image: Image.Image) -> str:
        if image.mode not in ("RGB", "L", "RGBA"):
            image = image.convert("RGB")
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        try:
            atomic_write(self.image_path(spec_key), buf.getvalue())
        except OSError as exc:
            raise _disk_error(self.image_path(spec_key), exc) from None
        return image_sha256(image)

    def put_generation(
        self,
        spec: RunSpec,
        image: Image.Image | None,
        stage_seconds: dict,
        provenance: dict,
        status: str = "ok",
        error: str | None = None,
    ) -> None:
        """Store a generated sample: the image first (atomically), then its row.

        `status="failed"` needs an `error` and may have no image. Replacing a sample drops its metrics,
        which were measured on the old image; storing the same pixels again (a second xdist worker that
        generated the sample too) changes nothing.
        """
        if not isinstance(spec, RunSpec):
            raise TypeError(f"put_generation: spec must be a RunSpec, got {type(spec).__name__}")
        if status not in STATUSES:
            raise ValueError(f"put_generation: status must be one of {STATUSES}, got {status!r}")
        if status == "ok" and (image is None or error is not None):
            raise ValueError("put_generation: status 'ok' needs an image and no error")
        if status == "failed" and not error:
            raise ValueError("put_generation: status 'failed' needs an error message")
        if image is not None and not isinstance(image, Image.Image):
            raise TypeError(f"put_generation: image must be a PIL image, got {type(image).__name__}")
        stages = {str(k): float(v) for k, v in dict(stage_seconds).items()}
        stages_json = _dumps(stages, f"stage_seconds of {spec.key}")
        prov_json = _dumps(provenance, f"provenance of {spec.key}")
        spec_json = _dumps(spec.as_dict(), "spec")
        key = spec.key
        sha = self._write_image(key, image) if image is not None else None
        if sha is not None:
            self._verified.add(key)
        run_id = self._current_run()

        def write(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT status, image_sha256 FROM samples WHERE spec_key = ?", (key,)).fetchone()
            if row is not None and status == "ok" and row["status"] == "ok" and row["image_sha256"] == sha:
                return  # the same pixels are stored already (another worker made them): keep their metrics
            c.execute("DELETE FROM metrics WHERE spec_key = ?", (key,))
            c.execute(
                "INSERT OR REPLACE INTO samples (spec_key, spec, status, error, image_sha256, stage_seconds,"
                " provenance, run_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, spec_json, status, error, sha, stages_json, prov_json, run_id, _now()),
            )

        self._write(write)
        if image is None:
            # A failed generation must not leave an older image that looks like its result.
            self.image_path(key).unlink(missing_ok=True)

    def record_failure(self, spec: RunSpec, error: str) -> None:
        """Mark a sample failed (NaN output, no face detected, ...); the run goes on.

        Keeps the sample's image if it has one (a detector failure happens after generation)."""
        if not isinstance(spec, RunSpec):
            raise TypeError(f"record_failure: spec must be a RunSpec, got {type(spec).__name__}")
        if not error:
            raise ValueError("record_failure: error must be a non-empty message")
        key, spec_json = spec.key, _dumps(spec.as_dict(), "spec")
        run_id = self._current_run()

        def write(c: sqlite3.Connection) -> None:
            cur = c.execute("UPDATE samples SET status = 'failed', error = ? WHERE spec_key = ?", (str(error), key))
            if cur.rowcount == 0:
                c.execute(
                    "INSERT INTO samples (spec_key, spec, status, error, image_sha256, stage_seconds, provenance,"
                    " run_id, created) VALUES (?, ?, 'failed', ?, NULL, '{}', '{}', ?, ?)",
                    (key, spec_json, str(error), run_id, _now()),
                )

        self._write(write)

    def _metrics_for(self, conn: sqlite3.Connection, keys: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {k: {} for k in keys}
        if not keys:
            return out
        # One query per chunk: SQLite limits the number of bound parameters.
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in conn.execute(f"SELECT * FROM metrics WHERE spec_key IN ({marks})", chunk):
                out[r["spec_key"]][r["metric"]] = {
                    "version": r["version"],
                    "values": json.loads(r["values"]),
                    "run_id": r["run_id"],
                    "created": r["created"],
                }
        return out

    def _record(self, row: sqlite3.Row, metrics: dict) -> SampleRecord | None:
        """Build a record, or None when an 'ok' row has lost its image (treated as unfinished)."""
        path = self.image_path(row["spec_key"])
        has_image = row["image_sha256"] is not None and path.is_file()
        if row["status"] == "ok" and not has_image:
            return None
        return SampleRecord(
            spec_key=row["spec_key"],
            spec=json.loads(row["spec"]),
            status=row["status"],
            error=row["error"],
            image_path=path if has_image else None,
            image_sha256=row["image_sha256"] if has_image else None,
            stage_seconds=json.loads(row["stage_seconds"]),
            provenance=json.loads(row["provenance"]),
            run_id=row["run_id"],
            created=row["created"],
            metrics=metrics,
        )

    def usable(self, spec: RunSpec) -> bool:
        """True when `spec` is finished and, if ok, its image file decodes to its stored hash. A resume
        regenerates what is not usable: the store trusts nothing on disk it did not check (once per
        process and key)."""
        record = self.get(spec)
        if record is None:
            return False
        if not record.ok or record.spec_key in self._verified:
            return True
        if isinstance(image_problem(record.image_path, record.image_sha256), str):
            return False
        self._verified.add(record.spec_key)
        return True

    def damaged_images(self) -> list[str]:
        """One line per finished sample whose image file is missing, does not decode or is not its hash."""
        def read(c: sqlite3.Connection) -> list[sqlite3.Row]:
            sql = "SELECT spec_key, image_sha256 FROM samples WHERE status = 'ok' ORDER BY spec_key"
            return c.execute(sql).fetchall()

        out = []
        for row in self._read(read):
            problem = image_problem(self.image_path(row["spec_key"]), row["image_sha256"])
            if isinstance(problem, str):
                out.append(f"{self.image_path(row['spec_key'])}: {problem}")
        return out

    def get(self, spec: RunSpec | str) -> SampleRecord | None:
        """The finished sample for `spec` (a RunSpec or its key), or None if it must be generated.

        A failed sample is returned (status 'failed'): rerunning a deterministic failure is waste."""
        key = spec.key if isinstance(spec, RunSpec) else str(spec)

        def read(c: sqlite3.Connection) -> tuple[sqlite3.Row | None, dict]:
            row = c.execute("SELECT * FROM samples WHERE spec_key = ?", (key,)).fetchone()
            return row, (self._metrics_for(c, [key])[key] if row is not None else {})

        row, metrics = self._read(read)
        return None if row is None else self._record(row, metrics)

    def samples(self, status: str | None = "ok", run_id: str | None = None, **spec_filters: Any) -> list[SampleRecord]:
        """Finished samples, ordered by spec key, filtered by status (None for all), run and spec fields.

        A spec filter is a value or a list of values: `store.samples(backbone="dev", steps=[4, 28])`.
        """
        if status is not None and status not in STATUSES:
            raise ValueError(f"samples: status must be one of {STATUSES} or None, got {status!r}")
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        for name, value in sorted(spec_filters.items()):
            if name not in SPEC_FIELDS:
                raise ValueError(f"samples: unknown filter {name!r}; filter on RunSpec fields: "
                                 f"{', '.join(SPEC_FIELDS)}")
            values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
            if not values:
                return []
            where.append(f"json_extract(spec, '$.{name}') IN ({','.join('?' * len(values))})")
            params.extend(values)
        sql = "SELECT * FROM samples" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY spec_key"

        def read(c: sqlite3.Connection) -> tuple[list[sqlite3.Row], dict]:
            rows = c.execute(sql, params).fetchall()
            return rows, self._metrics_for(c, [r["spec_key"] for r in rows])

        rows, metrics = self._read(read)
        records = (self._record(r, metrics[r["spec_key"]]) for r in rows)
        return [r for r in records if r is not None]

    # -- metrics ----------------------------------------------------------------------------------

    def put_metrics(self, spec_key: str, metric_name: str, metric_version: str, values: dict) -> None:
        """Store (or replace) one metric's values for one sample."""
        if not metric_name or not metric_version:
            raise ValueError("put_metrics: metric_name and metric_version must be non-empty strings")
        if not isinstance(values, dict):
            raise TypeError(f"put_metrics: values must be a dict, got {type(values).__name__}")
        values_json = _dumps(values, f"metric {metric_name!r} of {spec_key}")
        run_id = self._current_run()

        def write(c: sqlite3.Connection) -> None:
            if c.execute("SELECT 1 FROM samples WHERE spec_key = ?", (spec_key,)).fetchone() is None:
                raise StoreError(
                    f"put_metrics: no sample {spec_key} in {self.path}; store its generation with put_generation first"
                )
            c.execute(
                'INSERT OR REPLACE INTO metrics (spec_key, metric, version, "values", run_id, created)'
                " VALUES (?, ?, ?, ?, ?, ?)",
                (spec_key, metric_name, metric_version, values_json, run_id, _now()),
            )

        self._write(write)

    def needs_metric(self, spec_key: str, metric_name: str, metric_version: str) -> bool:
        """True unless this sample already has this metric at this version."""
        row = self._read(
            lambda c: c.execute(
                "SELECT version FROM metrics WHERE spec_key = ? AND metric = ?", (spec_key, metric_name)
            ).fetchone()
        )
        return row is None or row["version"] != metric_version

    def identity_means(self, metric_name: str, value_key: str | None = None, **spec_filters: Any) -> dict[str, float]:
        """Mean of one metric value per identity over finished samples (filters as in `samples`).

        `value_key` is the key inside the metric's values (default: the metric name, e.g. "id_sim")."""
        value_key = value_key or metric_name
        sums: dict[str, list[float]] = {}
        for rec in self.samples(**spec_filters):
            value = rec.metrics.get(metric_name, {}).get("values", {}).get(value_key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                sums.setdefault(rec.spec["identity"], []).append(float(value))
        return {ident: sum(v) / len(v) for ident, v in sorted(sums.items())}

    def integrity_check(self) -> str:
        return self._read(lambda c: c.execute("PRAGMA integrity_check").fetchone()[0])
