"""The store's SQLite file: its schema and version marks, how a connection is opened and checked, and how
SQLite's busy, full-disk and read-only errors become one-line StoreErrors naming the file."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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


def _disk_error(path: Path, exc: BaseException) -> StoreError:
    """A write that failed (disk full, read-only file system) as one line naming the path. Nothing
    committed is lost: the transaction rolled back, and a resume after freeing space goes on."""
    text = str(getattr(exc, "strerror", None) or exc)
    if "full" in text.lower() or getattr(exc, "errno", None) == 28:
        return StoreError(f"cannot write {path}: the disk is full ({text}); nothing stored was lost: free space "
                          "and rerun the same command to resume")
    return StoreError(f"cannot write {path} ({text}); make the store folder writable or choose another one")


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


def check_schema(conn: sqlite3.Connection, db_path: Path, readonly: bool) -> None:
    """Check that `conn` is an idrift store of this schema version; initialise an empty file (unless readonly)."""
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
        if not readonly and "leases" not in tables:  # a store written before leases existed
            conn.execute(_LEASES)
        return
    if app_id == APPLICATION_ID:
        raise StoreError(
            f"{db_path} is an idrift store of schema version {version}; this idrift reads schema "
            f"{SCHEMA_VERSION}. Use a new store folder (or the idrift release that wrote it)."
        )
    if app_id != 0 or tables:
        raise StoreError(
            f"{db_path} is not an idrift results store (application_id {app_id:#x}, tables "
            f"{', '.join(tables) or 'none'}); point the store at an empty folder or an idrift store"
        )
    if readonly:
        raise StoreError(f"{db_path} is an empty database, not an idrift results store")
    initialise(conn)


def initialise(conn: sqlite3.Connection) -> None:
    """Create the tables in an empty file, in WAL mode, once even when several processes race."""
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
