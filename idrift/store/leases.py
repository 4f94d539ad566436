"""Leases: which process computes which sample.

Two processes on one store (two `pytest benchmarks` runs, a run beside pytest -n) must not both
compute a sample: before generating, a process takes a lease row per spec key in one write
transaction; the others skip that key and come back to it (Runner.ensure). A lease is freed when
its sample is stored, when the store is closed, when it expires (LEASE_S), or at once when its
owner is a process of this host that no longer exists (a SIGKILLed run's resume does not wait).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Iterable

from idrift.store.schema import LEASE_S


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



class Leases:
    """The lease methods of ResultsStore (which provides `owner`, `readonly`, `_conn` and `_write`)."""

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
