"""The results store: one SQLite file plus one PNG per generated sample.

Layout of a store folder:
    results.sqlite        runs, samples and metrics (WAL journal, safe for several processes)
    images/<spec_key>.png the generated image of each finished sample

Why it is built this way:
- Several pytest-xdist workers write into one store at once. SQLite in WAL mode lets readers run
  beside one writer; every write is a short `BEGIN IMMEDIATE` transaction and a busy timeout makes
  the others wait their turn instead of failing. (WAL needs a local file system, not NFS.)
- A killed sweep must resume without redoing or losing work. An image is written to a temporary
  file, fsynced and renamed into place (atomic), and only then is its row committed. A row whose
  image is missing is treated as not finished, so `get` returns None and the runner regenerates it.
- Each metric is one row per (sample, metric) with the metric's version: a rerun recomputes a metric
  only when its version changed (`needs_metric`). Regenerating a sample drops its old metrics.
- Everything stored as JSON is serialised with sort_keys (and no NaN: a NaN result is a failure,
  recorded with `record_failure`, not a number).
- Sharded CI runs write separate stores that `merge_stores` combines; it refuses two different
  results for one spec key.

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> from idrift.config import RunSpec
    >>> spec = RunSpec(backbone="schnell", steps=4, guidance=0.0, alpha=1.0, prompt_id="portrait",
    ...                prompt="A portrait photo of the person", identity="id0", seed=0,
    ...                width=64, height=64, dtype="float32", profile="tiny")
    >>> store = ResultsStore(tempfile.mkdtemp())
    >>> store.get(spec) is None
    True
    >>> store.put_generation(spec, Image.new("RGB", (64, 64)), {"backbone": 0.1}, {"profile": "tiny"})
    >>> store.get(spec).status
    'ok'
    >>> store.needs_metric(spec.key, "lpips_reference", "v1")
    True
    >>> store.put_metrics(spec.key, "lpips_reference", "v1", {"lpips": 0.5})
    >>> store.needs_metric(spec.key, "lpips_reference", "v1")
    False
    >>> store.close()
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from idrift.config import RunSpec
from idrift.errors import IdriftError

DB_NAME = "results.sqlite"
IMAGES_DIR = "images"
SCHEMA_VERSION = 1
APPLICATION_ID = 0x69647266  # "idrf": marks the file as an idrift store (PRAGMA application_id)
BUSY_TIMEOUT_S = 60.0
LEASE_S = 1800.0  # a lease's lifetime (s): longer than any one sample or trajectory group takes
STATUSES = ("ok", "failed")
SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(RunSpec))

_LEASES = """CREATE TABLE IF NOT EXISTS leases (
    spec_key TEXT PRIMARY KEY,
    owner    TEXT NOT NULL,
    expires  REAL NOT NULL
)"""
_SCHEMA = _LEASES + """;
CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    started    TEXT NOT NULL,
    finished   TEXT,
    argv       TEXT NOT NULL,
    provenance TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    spec_key      TEXT PRIMARY KEY,
    spec          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error         TEXT,
    image_sha256  TEXT,
    stage_seconds TEXT NOT NULL,
    provenance    TEXT NOT NULL,
    run_id        TEXT NOT NULL REFERENCES runs(run_id),
    created       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    spec_key TEXT NOT NULL REFERENCES samples(spec_key) ON DELETE CASCADE,
    metric   TEXT NOT NULL,
    version  TEXT NOT NULL,
    "values" TEXT NOT NULL,
    run_id   TEXT NOT NULL REFERENCES runs(run_id),
    created  TEXT NOT NULL,
    PRIMARY KEY (spec_key, metric)
);
"""


class StoreError(IdriftError):
    """The results store folder or file cannot be used. The message names it and says what to do."""


class MergeConflictError(StoreError):
    """Two stores hold different results for the same spec key."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{what} must be JSON-serialisable with finite numbers ({exc}); "
            "record a NaN or inf result with record_failure(spec, error) instead"
        ) from exc


def image_sha256(image: Image.Image) -> str:
    """Hash of the pixels (mode, size, bytes), not of the PNG file, whose bytes vary with the encoder."""
    digest = hashlib.sha256(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class SampleRecord:
    """One stored sample with its metrics ({metric: {"version", "values", "run_id", "created"}})."""

    spec_key: str
    spec: dict
    status: str
    error: str | None
    image_path: Path | None  # None when there is no image (failed before an image existed)
    image_sha256: str | None
    stage_seconds: dict
    provenance: dict
    run_id: str
    created: str
    metrics: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def run_spec(self) -> RunSpec:
        return RunSpec(**self.spec)

    def load_image(self) -> Image.Image:
        """The sample's image, checked against its row's pixel hash: a truncated, replaced or unreadable
        file is a StoreError naming it (a resume regenerates it: ResultsStore.usable)."""
        if self.image_path is None:
            raise StoreError(f"sample {self.spec_key} has no image (status {self.status}: {self.error})")
        problem = image_problem(self.image_path, self.image_sha256)
        if isinstance(problem, str):
            raise StoreError(f"image {self.image_path} of sample {self.spec_key}: {problem}; rerun the run's command "
                             "(it regenerates the sample) or restore the file")
        return problem


def image_problem(path: Path, sha: str | None) -> Image.Image | str:
    """The image at `path` when it decodes and has pixel hash `sha`; otherwise why not (a str)."""
    try:
        with Image.open(path) as im:
            image = im.copy()
            image.load()
    except FileNotFoundError:
        return "the file is missing"
    except (OSError, SyntaxError, ValueError) as exc:  # PIL: truncated, not an image, bad chunk
        return f"cannot be decoded ({exc})"
    if sha is not None and image_sha256(image) != sha:
        return f"its pixels do not match the stored hash {sha} (the file was changed or replaced)"
    return image.convert("RGB") if image.mode != "RGB" else image


def _disk_error(path: Path, exc: BaseException) -> StoreError:
    """A write that failed (disk full, read-only file system) as one line naming the path. Nothing
    committed is lost: the transaction rolled back, and a resume after freeing space goes on."""
    text = str(getattr(exc, "strerror", None) or exc)
    if "full" in text.lower() or getattr(exc, "errno", None) == 28:
        return StoreError(f"cannot write {path}: the disk is full ({text}); nothing stored was lost: free space "
                          "and rerun the same command to resume")
    return StoreError(f"cannot write {path} ({text}); make the store folder writable or choose another one")


def _owner_gone(owner: str) -> bool:
    """True when a lease's owner ("host:pid:nonce") is a process of this host that has exited."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def _retry_busy(fn: Callable[[], Any], what: str) -> Any:
    """Call fn, retrying while SQLite reports the database busy or locked.

    The busy timeout covers ordinary lock waits, but SQLite returns SQLITE_BUSY at once in a few
    WAL cases (e.g. while the last connection of another process deletes the WAL file on exit, or
    runs recovery), so a fresh connection or statement must retry itself."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            if time.monotonic() > deadline:
                raise StoreError(
                    f"{what}: the database stayed locked for {BUSY_TIMEOUT_S:.0f} s ({exc}); another process "
                    "holds it, or the store is on a network file system (use a local folder)"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _connect(db_path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        # A WAL database in a folder this process cannot write (a read-only run folder, a mounted
        # archive): SQLite cannot make its -shm file, and mode=ro alone fails as "unable to open".
        # Nobody can be writing such a store, so it is read as immutable.
        immutable = "&immutable=1" if not os.access(db_path.parent, os.W_OK) else ""
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro{immutable}", uri=True, timeout=BUSY_TIMEOUT_S,
                               isolation_level=None)
    else:
        conn = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class ResultsStore:
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
        conn = self._conn
        # One read transaction: a consistent snapshot even while another process initialises the file.
        conn.execute("BEGIN")
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")
        if app_id == APPLICATION_ID and version == SCHEMA_VERSION:
            # Per connection. In WAL mode NORMAL loses nothing committed when a process is killed
            # (only a power cut can lose the last transactions).
            conn.execute("PRAGMA synchronous = NORMAL")
            if not self.readonly and "leases" not in tables:  # a store written before leases existed
                conn.execute(_LEASES)
            return
        if app_id == APPLICATION_ID:
            raise StoreError(
                f"{self.db_path} is an idrift store of schema version {version}; this idrift reads schema "
                f"{SCHEMA_VERSION}. Use a new store folder (or the idrift release that wrote it)."
            )
        if app_id != 0 or tables:
            raise StoreError(
                f"{self.db_path} is not an idrift results store (application_id {app_id:#x}, tables "
                f"{', '.join(tables) or 'none'}); point the store at an empty folder or an idrift store"
            )
        if self.readonly:
            raise StoreError(f"{self.db_path} is an empty database, not an idrift results store")
        self._initialise()

    def _initialise(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode = WAL")  # persistent: set once, before any table exists
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have initialised the file while we waited for the lock.
            if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                # Statement by statement: executescript() would commit the transaction early.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- leases -----------------------------------------------------------------------------------
    # Two processes on one store (two `pytest benchmarks` runs, a run beside pytest -n) must not both
    # compute a sample: before generating, a process takes a lease row per spec key in one write
    # transaction; the others skip that key and come back to it (Runner.ensure). A lease is freed when
    # its sample is stored, when the store is closed, when it expires (LEASE_S), or at once when its
    # owner is a process of this host that no longer exists (a SIGKILLed run's resume does not wait).

    def take_leases(self, keys: Iterable[str], ttl: float | None = None) -> set[str]:
        """Lease what nobody else holds of `keys`; returns the keys this process now holds."""
        keys = list(dict.fromkeys(keys))
        if self.readonly or not keys:
            return set(keys)
        now, ttl = time.time(), LEASE_S if ttl is None else ttl

        def write(c: sqlite3.Connection) -> set[str]:
            held = set()
            for key in keys:
                row = c.execute("SELECT owner, expires FROM leases WHERE spec_key = ?", (key,)).fetchone()
                if row is None or row["owner"] == self.owner or row["expires"] < now or _owner_gone(row["owner"]):
                    c.execute("INSERT OR REPLACE INTO leases (spec_key, owner, expires) VALUES (?, ?, ?)",
                              (key, self.owner, now + ttl))
                    held.add(key)
            return held

        return self._write(write)

    def release_leases(self, keys: Iterable[str] | None = None) -> None:
        """Free this process's leases (all of them, or those of `keys`)."""
        if self.readonly or self._conn is None:
            return
        if keys is None:
            self._write(lambda c: c.execute("DELETE FROM leases WHERE owner = ?", (self.owner,)))
            return
        keys = list(keys)
        self._write(lambda c: c.executemany("DELETE FROM leases WHERE spec_key = ? AND owner = ?",
                                            [(k, self.owner) for k in keys]))

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

    # -- runs -------------------------------------------------------------------------------------

    def start_run(self, argv: list[str] | None = None, provenance: dict | None = None) -> str:
        """Record a new run; later writes from this instance reference it. Returns the run id."""
        run_id = uuid.uuid4().hex
        argv_json = _dumps(list(sys.argv if argv is None else argv), "argv")
        prov_json = _dumps(provenance or {}, "run provenance")
        self._write(
            lambda c: c.execute(
                "INSERT INTO runs (run_id, started, finished, argv, provenance) VALUES (?, ?, NULL, ?, ?)",
                (run_id, _now(), argv_json, prov_json),
            )
        )
        self.run_id = run_id
        return run_id

    def finish_run(self) -> None:
        if self.run_id is None:
            return
        run_id = self.run_id
        self._write(lambda c: c.execute("UPDATE runs SET finished = ? WHERE run_id = ?", (_now(), run_id)))

    def _current_run(self) -> str:
        return self.run_id if self.run_id is not None else self.start_run()

    def runs(self) -> list[dict]:
        rows = self._read(lambda c: c.execute("SELECT * FROM runs ORDER BY started, run_id").fetchall())
        return [
            {
                "run_id": r["run_id"],
                "started": r["started"],
                "finished": r["finished"],
                "argv": json.loads(r["argv"]),
                "provenance": json.loads(r["provenance"]),
            }
            for r in rows
        ]

    # -- samples ----------------------------------------------------------------------------------

    def image_path(self, spec_key: str) -> Path:
        return self.images_dir / f"{spec_key}.png"

    def _write_image(self, spec_key: str, image: Image.Image) -> str:
        if image.mode not in ("RGB", "L", "RGBA"):
            image = image.convert("RGB")
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        try:
            _atomic_write(self.image_path(spec_key), buf.getvalue())
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
            return c.execute("SELECT spec_key, image_sha256 FROM samples WHERE status = 'ok' ORDER BY spec_key").fetchall()

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
                raise ValueError(f"samples: unknown filter {name!r}; filter on RunSpec fields: {', '.join(SPEC_FIELDS)}")
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


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path` (atomic on POSIX)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_copy(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.stem}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        # origin[key] = the store that the kept sample came from (the output itself for existing ones).
        runs: dict[str, sqlite3.Row] = {}
        samples: dict[str, tuple[SampleRecord, Path]] = {}
        for rec in target.samples(status=None):
            samples[rec.spec_key] = (rec, out_path)
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

        # Every image copied must be the one its row describes: a changed file is refused, not spread.
        for key, (rec, origin) in samples.items():
            if origin != out_path and rec.image_path is not None:
                problem = image_problem(rec.image_path, rec.image_sha256)
                if isinstance(problem, str):
                    raise MergeConflictError(
                        f"merge refused: image {rec.image_path} of spec key {key} in {origin}: {problem}; rerun "
                        f"that store's run to regenerate it (or delete the file), then merge again")
        # Images first (atomic), rows after, all rows in one transaction.
        for key, (rec, origin) in samples.items():
            if origin != out_path and rec.image_path is not None:
                _atomic_copy(rec.image_path, target.image_path(key))
        existing = {r.spec_key: r for r in target.samples(status=None)}
        counts = {"runs": 0, "samples": 0, "metrics": 0}

        def write(c: sqlite3.Connection) -> None:
            for row in runs.values():
                c.execute(
                    "INSERT INTO runs (run_id, started, finished, argv, provenance) VALUES (?, ?, ?, ?, ?)",
                    (row["run_id"], row["started"], row["finished"], row["argv"], row["provenance"]),
                )
                counts["runs"] += 1
            for key, (rec, origin) in samples.items():
                if key not in existing:
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
    finally:
        target.close()


def _check_same(a: SampleRecord, a_src: Path, b: SampleRecord, b_src: Path) -> None:
    def conflict(what: str, va: Any, vb: Any) -> MergeConflictError:
        return MergeConflictError(
            f"merge refused: spec key {a.spec_key} has a different {what} in {a_src} ({va}) and in {b_src} ({vb}); "
            "the same spec must give the same result: find out which is right, remove the other, and merge again"
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
