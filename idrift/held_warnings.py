"""Warnings held while progress bars are shown, then written to the run folder's log and printed once.

A warning printed through a tqdm bar breaks the bar into fragments (diffusers' and insightface's notices,
idrift's own). While `held_warnings` is active, Python warnings (`warnings.warn`) and WARNING-or-worse
log records of any logger that writes to the terminal (diffusers, transformers, ... and the root logger)
are collected instead of printed. On exit, normal or not (Ctrl-C, an error), every one is appended to
`log_path` with its origin, and each distinct one is printed once to `stream`, with a count where it
repeated ("(x12)").

    with held_warnings(out / "warnings.log"):
        for claim in claims:
            session.run_claim(claim, progress=True)
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from idrift.counted import counted


class _Collect(logging.Handler):
    """Keeps each record once (a record can reach several terminal handlers through propagation)."""

    def __init__(self, held: list[tuple[str, str]]):
        super().__init__(level=logging.WARNING)
        self.held = held
        self._seen: dict[int, logging.LogRecord] = {}  # the records themselves keep their ids unique

    def emit(self, record: logging.LogRecord) -> None:
        if id(record) in self._seen:
            return
        self._seen[id(record)] = record
        try:
            self.held.append((f"{record.levelname.lower()} [{record.name}]", record.getMessage()))
        except Exception:  # a malformed record must not end a run
            self.handleError(record)


def _to_terminal(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return not isinstance(handler, logging.FileHandler) and stream is not None and stream in (
        sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)


@contextmanager
def held_warnings(log_path: str | Path, stream=None) -> Iterator[list[tuple[str, str]]]:
    """Hold warnings and terminal log records (see the module docstring); yields the list they go to."""
    held: list[tuple[str, str]] = []
    collect = _Collect(held)
    emit = logging.StreamHandler.emit

    def held_emit(handler, record):  # also covers handlers a library sets up while the bars run
        if record.levelno >= logging.WARNING and _to_terminal(handler):
            collect.handle(record)
        else:
            emit(handler, record)

    logging.StreamHandler.emit = held_emit
    last_resort, logging.lastResort = logging.lastResort, collect  # records of loggers with no handler at all
    with warnings.catch_warnings(record=True) as caught:
        try:
            yield held
        finally:
            logging.lastResort = last_resort
            logging.StreamHandler.emit = emit
            for w in caught:
                held.append((f"{w.category.__name__} ({Path(w.filename).name}:{w.lineno})", str(w.message)))
            _report(held, Path(log_path), stream if stream is not None else sys.stderr)


def _report(held: list[tuple[str, str]], log_path: Path, stream) -> None:
    if not held:
        return
    lines = [f"{origin}: {message}" for origin, message in held]
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        with open(log_path, "a", encoding="utf-8") as log:
            log.writelines(f"{stamp} {line}\n" for line in lines)
        where = f", all in {log_path}"
    except OSError as exc:
        where = f"; {log_path} could not be written ({exc})"
    shown = counted(lines)
    print(f"warnings while the bars ran ({len(lines)}, {len(shown)} distinct{where}):", file=stream)
    for line in shown:
        print(f"  {line}", file=stream)
