"""The results store on a real SQLite file, with real concurrent and killed writer processes."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from idrift.config import RunSpec
from idrift.store import (
    DB_NAME,
    MergeConflictError,
    ResultsStore,
    StoreError,
    image_sha256,
    merge_stores,
)

REPO = Path(__file__).resolve().parents[1]


def make_spec(i: int, **changes) -> RunSpec:
    spec = RunSpec(
        backbone="schnell",
        steps=4,
        guidance=0.0,
        alpha=1.0,
        prompt_id="portrait",
        prompt="A portrait photo of the person",
        identity=f"id{i % 7}",
        seed=i,
        width=64,
        height=64,
        dtype="float32",
        profile="tiny",
    )
    return spec.replace(**changes) if changes else spec


def make_image(i: int, size: int = 16) -> Image.Image:
    rng = np.random.default_rng(i)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def put(store: ResultsStore, i: int, **changes) -> RunSpec:
    spec = make_spec(i, **changes)
    store.put_generation(spec, make_image(i), {"backbone": 0.5 + i, "vae_decode": 0.25}, {"profile": "tiny", "i": i})
    return spec


# Writer used by the multi-process tests: writes samples [first, first + count) with one metric each.
WRITER = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, sys.argv[1])
    from test_store import make_spec, make_image  # this file: the same recipes as the parent
    from idrift.store import ResultsStore
    store = ResultsStore(sys.argv[2])
    store.start_run(argv=["writer", sys.argv[3]], provenance={"worker": int(sys.argv[3])})
    first, count, pause, go = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
    while go and not os.path.exists(go):  # start together, so the writes really interleave
        time.sleep(0.005)
    for i in range(first, first + count):
        spec = make_spec(i)
        if store.get(spec) is not None:
            continue  # finished by an earlier, killed writer
        store.put_generation(spec, make_image(i), {"backbone": 0.1}, {"worker": sys.argv[3]})
        store.put_metrics(spec.key, "lpips_reference", "v1", {"lpips": i / 100})
        time.sleep(pause)
    store.finish_run()
    """
)


def start_writer(store: Path, worker: int, first: int, count: int, pause: float,
                 go: Path | None = None) -> subprocess.Popen:
    # No .pyc writes: simultaneous first imports would all race to write the same cache files.
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        PYTHONDONTWRITEBYTECODE="1",
    )
    args = [sys.executable, "-c", WRITER, str(Path(__file__).parent), str(store), str(worker), str(first), str(count),
            str(pause), str(go or "")]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def count_rows(store_dir: Path, table: str) -> int:
    db = store_dir / DB_NAME
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0


# -- single process -----------------------------------------------------------------------------


def test_round_trip(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "store") as store:
        run_id = store.start_run(argv=["pytest", "benchmarks"], provenance={"gpu": "none"})
        spec = put(store, 3)
        store.put_metrics(spec.key, "lpips_reference", "lpips0.1.4-r1", {"lpips": 0.25})
        rec = store.get(spec)

    assert rec is not None and rec.ok and rec.error is None
    assert rec.spec == spec.as_dict() and rec.run_spec() == spec
    assert rec.image_path == tmp_path / "store" / "images" / f"{spec.key}.png"
    assert np.array_equal(np.asarray(rec.load_image()), np.asarray(make_image(3)))
    assert rec.image_sha256 == image_sha256(make_image(3))
    assert rec.stage_seconds == {"backbone": 3.5, "vae_decode": 0.25}
    assert rec.provenance == {"profile": "tiny", "i": 3}
    assert rec.run_id == run_id
    assert rec.metrics["lpips_reference"]["version"] == "lpips0.1.4-r1"
    assert rec.metrics["lpips_reference"]["values"] == {"lpips": 0.25}

    reopened = ResultsStore(tmp_path / "store")
    (run,) = reopened.runs()
    assert run["run_id"] == run_id and run["argv"] == ["pytest", "benchmarks"]
    assert run["provenance"] == {"gpu": "none"} and run["finished"] is not None  # the `with` finished it
    assert [r.spec_key for r in reopened.samples()] == [spec.key]
    assert reopened.integrity_check() == "ok"


def test_rerun_reuses_finished_work(tmp_path: Path) -> None:
    first = ResultsStore(tmp_path)
    specs = [put(first, i) for i in range(5)]
    first.close()

    # A second run (a new process would do exactly this) finds every sample and regenerates none.
    second = ResultsStore(tmp_path)
    second.start_run(argv=["rerun"])
    todo = [s for s in specs + [make_spec(5)] if second.get(s) is None]
    assert todo == [make_spec(5)]
    put(second, 5)
    records = second.samples()
    assert len(records) == 6
    # Rows keep the run that made them: five from the first run, one from the second.
    assert sorted(r.run_id == second.run_id for r in records) == [False] * 5 + [True]
    assert len(second.runs()) == 2


def test_missing_image_means_unfinished(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    spec, other = put(store, 0), put(store, 1)
    store.image_path(spec.key).unlink()
    assert store.get(spec) is None
    assert [r.spec_key for r in store.samples()] == [other.key]
    put(store, 0)  # the runner regenerates it
    assert store.get(spec) is not None


def test_metric_version_change_triggers_recompute(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    spec = put(store, 0)
    assert store.needs_metric(spec.key, "lpips_reference", "v1")
    store.put_metrics(spec.key, "lpips_reference", "v1", {"lpips": 0.5})
    assert not store.needs_metric(spec.key, "lpips_reference", "v1")
    assert store.needs_metric(spec.key, "identity", "v1")  # per metric
    assert store.needs_metric(spec.key, "lpips_reference", "v2")
    store.put_metrics(spec.key, "lpips_reference", "v2", {"lpips": 0.4})
    assert store.get(spec).metrics["lpips_reference"]["values"] == {"lpips": 0.4}
    # The same pixels stored again (a second xdist worker made the sample too) keep the metrics ...
    put(store, 0)
    assert not store.needs_metric(spec.key, "lpips_reference", "v2")
    # ... while a regenerated image with other pixels invalidates those measured on the old one.
    store.put_generation(spec, make_image(99), {"backbone": 0.5}, {"profile": "tiny"})
    assert store.needs_metric(spec.key, "lpips_reference", "v2")


def test_failures_are_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    nan_spec = make_spec(0)
    store.record_failure(nan_spec, "NonFiniteError: NaN in the VAE output")
    no_face = put(store, 1)
    store.record_failure(no_face, "NoFaceError: no face detected")
    fine = put(store, 2)

    rec = store.get(nan_spec)
    assert rec.status == "failed" and rec.image_path is None and "NaN" in rec.error
    rec = store.get(no_face)
    assert rec.status == "failed" and rec.image_path is not None  # detector failure keeps the image
    assert [r.spec_key for r in store.samples()] == [fine.key]
    assert {r.spec_key for r in store.samples(status="failed")} == {nan_spec.key, no_face.key}
    assert len(store.samples(status=None)) == 3


def test_samples_filters(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    for i in range(3):
        put(store, i)
        put(store, i, backbone="dev", steps=28, guidance=3.5)
        put(store, i, backbone="dev", steps=4, guidance=3.5)
    assert len(store.samples()) == 9
    assert {r.spec["backbone"] for r in store.samples(backbone="schnell")} == {"schnell"}
    assert len(store.samples(backbone="dev", steps=[4, 28])) == 6
    assert len(store.samples(backbone="dev", steps=28, seed=1)) == 1
    with pytest.raises(ValueError, match="unknown filter 'step'.*steps"):
        store.samples(step=4)


def test_identity_means(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    for i in range(4):  # identities id0..id3, one sample each, plus a second sample of id0
        spec = put(store, i)
        store.put_metrics(spec.key, "id_sim", "v1", {"id_sim": i / 10})
    spec = put(store, 7)  # identity id0 again (7 % 7)
    store.put_metrics(spec.key, "id_sim", "v1", {"id_sim": 0.5})
    store.record_failure(make_spec(8), "NoFaceError")  # failed samples do not count
    assert store.identity_means("id_sim") == pytest.approx({"id0": 0.25, "id1": 0.1, "id2": 0.2, "id3": 0.3})
    assert store.identity_means("id_sim", seed=[1, 2]) == pytest.approx({"id1": 0.1, "id2": 0.2})


def test_bad_values_are_refused(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    spec = put(store, 0)
    with pytest.raises(ValueError, match="record_failure"):
        store.put_metrics(spec.key, "identity", "v1", {"id_sim": float("nan")})
    with pytest.raises(StoreError, match="no sample deadbeef.*put_generation first"):
        store.put_metrics("deadbeef", "identity", "v1", {"id_sim": 0.5})
    with pytest.raises(ValueError, match="needs an error"):
        store.put_generation(make_spec(1), None, {}, {}, status="failed")
    assert store.needs_metric(spec.key, "identity", "v1")  # nothing half-written


# -- files that are not ours ---------------------------------------------------------------------


def test_unwritable_folder_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match=r"exists and is not a folder"):
        ResultsStore(blocker)
    with pytest.raises(StoreError, match=rf"{blocker / 'store'} is not writable"):
        ResultsStore(blocker / "store")


def test_foreign_old_and_corrupt_files_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / DB_NAME) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(StoreError, match="not an idrift results store.*customers"):
        ResultsStore(foreign)

    old = tmp_path / "old"
    ResultsStore(old).close()
    with sqlite3.connect(old / DB_NAME) as conn:
        conn.execute("PRAGMA user_version = 0")
    with pytest.raises(StoreError, match="schema version 0; this idrift reads schema 1"):
        ResultsStore(old)

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        ResultsStore(garbage)


# -- locking -------------------------------------------------------------------------------------


def test_a_writer_waits_for_a_held_lock(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process is mid-write
    releaser = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    releaser.start()
    started = time.monotonic()
    spec = put(store, 0)  # waits for the lock instead of failing
    releaser.join()
    other.close()
    assert time.monotonic() - started >= 0.25
    assert store.get(spec) is not None


def test_busy_errors_are_retried() -> None:
    from idrift.store import _retry_busy

    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")  # what SQLite returns in some WAL races
        return "done"

    assert _retry_busy(flaky, "test") == "done" and len(calls) == 3
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        _retry_busy(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("no such table: x")), "test")


# -- several processes ---------------------------------------------------------------------------


def test_concurrent_writers(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    go = tmp_path / "go"
    procs = [start_writer(store_dir, w, first=w * 25, count=25, pause=0.002, go=go) for w in range(4)]
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err

    store = ResultsStore(store_dir)
    records = store.samples()
    assert sorted(r.spec["seed"] for r in records) == list(range(100))
    assert all(r.metrics["lpips_reference"]["values"] == {"lpips": r.spec["seed"] / 100} for r in records)
    assert all(r.image_sha256 == image_sha256(make_image(r.spec["seed"])) for r in records)
    assert len(store.runs()) == 4 and all(run["finished"] for run in store.runs())
    assert store.integrity_check() == "ok"
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # The writers overlapped in time (otherwise this test would not test concurrency).
    spans = sorted(
        (min(r.created for r in records if r.run_id == run), max(r.created for r in records if r.run_id == run))
        for run in {r.run_id for r in records}
    )
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def test_killed_writer_leaves_a_readable_store(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    proc = start_writer(store_dir, 0, first=0, count=25, pause=0.02)
    deadline = time.monotonic() + 60
    while count_rows(store_dir, "metrics") < 5:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "writer made no progress"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    store = ResultsStore(store_dir)
    assert store.integrity_check() == "ok"
    done = store.samples(status=None)
    assert 5 <= len(done) < 25
    for rec in done:  # everything the store reports finished is whole
        assert rec.image_sha256 == image_sha256(rec.load_image())
    (run,) = store.runs()
    assert run["finished"] is None  # the interrupted run shows as such
    store.close()

    # Resume: a new writer skips finished samples and completes the rest.
    resumed = start_writer(store_dir, 1, first=0, count=25, pause=0)
    assert resumed.wait(timeout=60) == 0, resumed.communicate()[1]
    store = ResultsStore(store_dir)
    records = store.samples()
    assert sorted(r.spec["seed"] for r in records) == list(range(25))
    assert sum(r.run_id == run["run_id"] for r in records) == len(done)  # finished work was kept


# -- merging shards ------------------------------------------------------------------------------


def test_merge_of_disjoint_stores_is_their_union(tmp_path: Path) -> None:
    a, b = ResultsStore(tmp_path / "a"), ResultsStore(tmp_path / "b")
    for i in range(4):
        spec = put(a if i % 2 else b, i)
        (a if i % 2 else b).put_metrics(spec.key, "identity", "v1", {"id_sim": i / 10})
    b.record_failure(make_spec(9), "NoFaceError: no face")
    expected = {r.spec_key: r for s in (a, b) for r in s.samples(status=None)}
    runs = {r["run_id"] for s in (a, b) for r in s.runs()}
    a.close(), b.close()

    counts = merge_stores([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    assert counts == {"runs": 2, "samples": 5, "metrics": 4}
    out = ResultsStore(tmp_path / "out")
    merged = {r.spec_key: r for r in out.samples(status=None)}
    assert merged.keys() == expected.keys()
    for key, rec in merged.items():
        want = expected[key]
        assert (rec.status, rec.image_sha256, rec.metrics, rec.spec, rec.run_id) == (
            want.status, want.image_sha256, want.metrics, want.spec, want.run_id
        )
        if rec.ok:
            assert rec.image_sha256 == image_sha256(rec.load_image())
    assert {r["run_id"] for r in out.runs()} == runs
    assert out.integrity_check() == "ok"


def test_conflicting_merge_is_refused(tmp_path: Path) -> None:
    a, b = ResultsStore(tmp_path / "a"), ResultsStore(tmp_path / "b")
    spec = put(a, 0)
    b.put_generation(spec, make_image(99), {}, {})  # same spec, different pixels
    a.close(), b.close()
    with pytest.raises(MergeConflictError) as info:
        merge_stores([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    message = str(info.value)
    assert spec.key in message and str(tmp_path / "a") in message and str(tmp_path / "b") in message
    assert "image" in message
    assert ResultsStore(tmp_path / "out").samples(status=None) == []  # nothing half-merged

    # Same image, different metric value: refused too, naming the metric.
    c = ResultsStore(tmp_path / "c")
    put(c, 0)
    c.put_metrics(spec.key, "identity", "v1", {"id_sim": 0.6})
    a = ResultsStore(tmp_path / "a")
    a.put_metrics(spec.key, "identity", "v1", {"id_sim": 0.5})
    a.close(), c.close()
    with pytest.raises(MergeConflictError, match=rf"{spec.key} has a different value of metric 'identity'"):
        merge_stores([tmp_path / "a", tmp_path / "c"], tmp_path / "out2")

    # Identical duplicates (a shard uploaded twice) are fine.
    shutil.copytree(tmp_path / "a", tmp_path / "a_again")
    assert merge_stores([tmp_path / "a", tmp_path / "a_again"], tmp_path / "out3")["samples"] == 1
