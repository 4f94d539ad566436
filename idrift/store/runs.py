"""Runs: each process's writes into a store belong to one run row (its argv, provenance, start and end)."""

from __future__ import annotations

import json
import sys
import uuid

from idrift.store.schema import _dumps, _now


class Runs:
    """The run methods of ResultsStore (which provides `run_id`, `_write` and `_read`)."""

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
