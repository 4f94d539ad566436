"""Faults: sweeps killed with SIGKILL at random points, and Ctrl-C, on real processes (tiny profile).

- SIGKILL: `tests/sweep_child.py sweep` runs the figure5_guidance grid (30 samples) through the real
  BenchmarkSession + Runner.ensure, as `pytest benchmarks/test_guidance.py` does. It is killed 5
  times at random points (fixed seed) once its models are built, each time resuming the same store;
  after every kill the store must be sound (SQLite integrity, every 'ok' row has its image with the
  recorded pixel hash, every PNG decodes in full). A sixth, uninterrupted process finishes it, and the
  result must equal an uninterrupted run in another store sample for sample: the same spec keys,
  statuses, pixel hashes and metric values.
- Ctrl-C (SIGINT) on `python -m pytest benchmarks/test_guidance.py`: pytest stops within seconds with
  its "interrupted" exit status (2), no INTERNALERROR, and the store keeps what was finished.
- Ctrl-C on `idrift run` before its first claim is done (tests/test_cli.py interrupts one mid-run
  and resumes it): the dispatcher's one line, exit 130, no traceback, no results.json that claims
  anything, a sound store.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from interrupts import interrupted_exit, sigint_as_at_a_terminal
from PIL import Image

from idrift.store import DB_NAME, IMAGES_DIR, ResultsStore, image_sha256

REPO = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("sweep_child.py")
KILLS = 5
KILL_SEED = 20261125
N_SAMPLES = 30  # figure5_guidance, smoke tier: 5 guidance scales x 2 identities x 3 prompts

pytestmark = pytest.mark.slow  # about 100 s on two CPU cores, almost all of it process start-up


def _env(tmp: Path) -> dict:
    env = dict(os.environ, IDRIFT_CACHE=str(tmp / "cache"), PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _sweep(store: Path, tmp: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(CHILD), "sweep", str(store), str(tmp / "cache")], cwd=REPO,
                            env=_env(tmp), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=log.open("w"), text=True)


class Lines:
    """A child's stdout, line by line, read by a thread (select() cannot see lines already buffered)."""

    def __init__(self, stream):
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.queue.put(line.strip())
        self.queue.put(None)  # EOF

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} line within {timeout:.0f} s") from None
            if line is None:
                raise AssertionError(f"the child ended without a {prefix!r} line")
            if line.startswith(prefix):
                return line


def _progress(store: Path) -> int:
    return _count(store, "SELECT (SELECT count(*) FROM samples) + (SELECT count(*) FROM metrics)")


def _count(store: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"{(store / DB_NAME).as_uri()}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def assert_store_sound(path: Path) -> dict:
    """What a kill may never leave: a damaged database, an 'ok' row without its image or with another
    image, a PNG that does not decode in full. Returns counts for the log."""
    with ResultsStore(path) as store:
        assert store.integrity_check() == "ok"
        rows = store._read(lambda c: c.execute("SELECT spec_key, status, image_sha256 FROM samples").fetchall())
        n_metrics = store._read(lambda c: c.execute("SELECT count(*) FROM metrics").fetchone()[0])
        runs = store.runs()
    images = path / IMAGES_DIR
    for row in rows:
        if row["status"] == "ok":
            png = images / f"{row['spec_key']}.png"
            assert png.is_file(), f"ok row {row['spec_key']} has no image"
            with Image.open(png) as im:
                assert image_sha256(im.convert("RGB")) == row["image_sha256"], f"{png} is not the recorded image"
    for png in images.glob("*.png"):  # including images whose row was never committed
        with Image.open(png) as im:
            im.load()  # raises on a truncated file
    leftovers = [p.name for p in images.iterdir() if not p.name.endswith(".png")]
    assert all(name.endswith(".tmp") for name in leftovers), leftovers  # only temp files of interrupted writes
    return {"samples": len(rows), "metrics": n_metrics, "runs": len(runs),
            "unfinished_runs": sum(r["finished"] is None for r in runs), "temp_files": len(leftovers)}


def store_contents(path: Path) -> dict:
    """Sample by sample: status, error, pixel hash and every metric (version and values)."""
    with ResultsStore(path, readonly=True) as store:
        return {r.spec_key: (r.status, r.error, r.image_sha256,
                             {name: (m["version"], m["values"]) for name, m in sorted(r.metrics.items())})
                for r in store.samples(status=None)}


def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(tmp_path):
    killed_store, reference_store = tmp_path / "killed", tmp_path / "reference"
    # The built-in identity set is written into the shared cache once, before processes race for it.
    from idrift.data.identities import builtin_identity_set

    builtin_identity_set(tmp_path / "cache")
    # The uninterrupted run: a fresh process of its own, beside the killed ones (two cores).
    reference = _sweep(reference_store, tmp_path, tmp_path / "reference.log")
    # The killed runs: processes forked from one that has imported and built everything (see
    # sweep_child.py), so that each kill costs a fork, not a 10 s start-up. SIGKILL acts the same.
    zygote = subprocess.Popen([sys.executable, str(CHILD), "zygote", str(killed_store), str(tmp_path / "cache")],
                              cwd=REPO, env=_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=(tmp_path / "zygote.log").open("w"), text=True)
    lines = Lines(zygote.stdout)
    try:
        lines.wait_for("ZYGOTE READY", timeout=180)

        def fork() -> int:
            zygote.stdin.write("fork\n")
            zygote.stdin.flush()
            return int(lines.wait_for("CHILD", timeout=30).split()[1])

        # Random points of the sweep's 90 writes (30 samples, then 2 metric rows each: 2 points while
        # generating, 3 while measuring); each process is killed once the store holds the next point,
        # after a random few milliseconds more, so the kills fall inside image writes, transactions and
        # measurements alike, at any machine speed.
        rng = random.Random(KILL_SEED)
        points = sorted(rng.sample(range(2, N_SAMPLES), 2)
                        + rng.sample(range(N_SAMPLES + 1, 3 * N_SAMPLES - 1), KILLS - 2))
        history = []
        for point in points:
            pid = fork()
            todo = int(lines.wait_for("READY", timeout=60).split()[1])
            deadline = time.monotonic() + 120
            while _progress(killed_store) < point:
                assert time.monotonic() < deadline, f"no progress to write {point}"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.05))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it had finished (then its EXIT status says 0)
            status = int(lines.wait_for(f"EXIT {pid}", timeout=30).split()[2])
            counts = assert_store_sound(killed_store)
            history.append(dict(point=point, todo_before=todo, killed=status == -signal.SIGKILL, **counts))
        print("\n" + "\n".join(map(str, history)))
        landed = [h for h in history if h["killed"]]
        assert len(landed) >= 3, history  # most kills hit a running sweep, not one that had finished
        assert any(h["samples"] < N_SAMPLES for h in landed), history  # kills while generating ...
        assert any(h["samples"] == N_SAMPLES and h["metrics"] < 2 * N_SAMPLES for h in landed), history  # ... measuring

        pid = fork()  # resume, uninterrupted
        assert lines.wait_for("DONE", timeout=120) == f"DONE {N_SAMPLES}"
        assert lines.wait_for(f"EXIT {pid}", timeout=30) == f"EXIT {pid} 0"
        zygote.stdin.write("quit\n")
        zygote.stdin.flush()
        assert zygote.wait(timeout=30) == 0, (tmp_path / "zygote.log").read_text()[-3000:]
    finally:
        if zygote.poll() is None:
            zygote.kill()
    counts = assert_store_sound(killed_store)
    assert counts["unfinished_runs"] == len(landed)  # each killed process shows as an interrupted run

    reference.communicate(timeout=300)
    assert reference.returncode == 0, (tmp_path / "reference.log").read_text()[-3000:]
    resumed, uninterrupted = store_contents(killed_store), store_contents(reference_store)
    assert len(uninterrupted) == N_SAMPLES and set(resumed) == set(uninterrupted)
    for key in uninterrupted:
        assert resumed[key] == uninterrupted[key], key
    assert all(status == "ok" and {"pixels", "id_sim"} <= metrics.keys()
               for status, _, _, metrics in resumed.values())


def _stored_samples(store: Path) -> int:
    return _count(store, "SELECT count(*) FROM samples")


def test_ctrl_c_stops_pytest_benchmarks_cleanly(tmp_path):
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "benchmarks/test_guidance.py", "-q", "-p", "no:cacheprovider",
         "--idrift-store", str(store)],
        cwd=REPO, env=_env(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, preexec_fn=sigint_as_at_a_terminal)
    deadline = time.monotonic() + 240
    while proc.poll() is None and _stored_samples(store) < 3:
        assert time.monotonic() < deadline, "the benchmarks stored no sample in time"
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    out, _ = proc.communicate(timeout=60)
    stopped_after = time.monotonic() - sent
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert "KeyboardInterrupt" in out and "INTERNALERROR" not in out, out[-3000:]
    assert stopped_after < 20, f"took {stopped_after:.1f} s to stop"
    counts = assert_store_sound(store)
    assert 3 <= counts["samples"] < N_SAMPLES  # what was finished is kept; the rest was not faked
    assert counts["unfinished_runs"] == 1  # the interrupted run shows as such


def test_ctrl_c_on_idrift_run_before_any_claim_is_done(tmp_path):
    out_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "idrift.cli", "run", "--profile", "tiny", "--claims", "figure5_guidance",
         "--out", str(out_dir)],
        cwd=tmp_path, env=_env(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=sigint_as_at_a_terminal)
    lines: list[str] = []
    started = threading.Event()

    def read_stderr() -> None:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("idrift run: profile"):  # printed once the store is open, before any sample
                started.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    assert started.wait(timeout=180), "".join(lines)[-3000:]
    proc.send_signal(signal.SIGINT)
    stdout = proc.stdout.read()
    proc.wait(timeout=60)
    reader.join(timeout=10)
    stderr = "".join(lines)
    assert interrupted_exit(proc.returncode), stdout + stderr[-3000:]
    assert "idrift run: interrupted; finished samples are kept, rerun the same command to resume" in stderr
    assert "Traceback" not in stderr, stderr[-3000:]
    results = out_dir / "results.json"
    if results.is_file():  # written only after a claim finishes; never half a file
        doc = json.loads(results.read_text())
        assert doc["complete"] is False and not doc["claims"]
    counts = assert_store_sound(out_dir / "store")
    assert counts["unfinished_runs"] == 1 and counts["samples"] < N_SAMPLES
