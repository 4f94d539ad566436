"""Scale-out as a user runs it: `pytest -n 2 benchmarks`, `--idrift-shard i/n`, `idrift merge`: real
subprocess runs of the benchmarks on the tiny profile (CPU).

The runs are the expensive part (about 15 s of start-up each, then the samples), so the module runs
them once, side by side, and the tests read their stores:
    xdist    pytest -n 2 benchmarks -k guidance                 two workers writing one store at once
    shard i  pytest benchmarks -k guidance --idrift-shard i/2   i = 0, 1: one process each
    merged   idrift merge shard0 shard1 --out merged; then pytest benchmarks -k guidance --idrift-store merged
`guidance` is the cheapest family: 30 FLUX.1-schnell samples of 64 px, one claim (figure 5).
Each sample of the merged store was made by a single process, so `merged == xdist` shows both that
two workers give the same per-sample results as one, and that the merged shards equal the unsharded run.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from idrift.config import RunSpec
from idrift.distributed import choose_gpu, worker_index, xdist_group
from idrift.errors import IdriftError
from idrift.runner import _run_key
from idrift.sharding import in_shard
from idrift.store import ResultsStore

pytestmark = pytest.mark.slow  # about 75 s on two CPU cores shared with other work: four benchmark runs

REPO = Path(__file__).resolve().parents[1]
FAMILY = "guidance"
GRID = 30  # guidance, smoke tier: 2 identities x 3 prompts x 5 guidance scales
TIMEOUT_S = 600


def _env(cache: Path) -> dict[str, str]:
    # A clean environment: an outer pytest-xdist run (PYTEST_XDIST_WORKER) or a user's IDRIFT_STORE,
    # IDRIFT_SHARD, ... must not leak into the runs under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "IDRIFT_"))}
    env["IDRIFT_CACHE"] = str(cache)  # nothing of the tests lands in the repository's .idrift
    # One thread per process: the runs share two cores, and OpenMP threads spinning for a busy core cost
    # four times the CPU (measured: 53 s against 13 s for one run of the family). Same results.
    env["OMP_NUM_THREADS"] = "1"
    return env


def _pytest(cache: Path, store: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", "-k", FAMILY,
           "--idrift-store", str(store), *args]
    return subprocess.Popen(cmd, cwd=REPO, env=_env(cache), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _idrift(cache: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "idrift.cli", *args], cwd=REPO, env=_env(cache),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def _finish(proc: subprocess.Popen) -> str:
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        raise AssertionError(f"{' '.join(proc.args)} ran past {TIMEOUT_S} s:\n{output[-4000:]}") from None
    assert proc.returncode == 0, f"{' '.join(proc.args)} exited {proc.returncode}:\n{output[-6000:]}"
    return output


def snapshot(store_path: Path) -> dict[str, tuple]:
    """Per sample: status, image pixel hash and every metric's version and values."""
    store = ResultsStore(store_path, readonly=True)
    try:
        return {r.spec_key: (r.status, r.image_sha256, {m: (v["version"], v["values"]) for m, v in r.metrics.items()})
                for r in store.samples(status=None)}
    finally:
        store.close()


def rows(store_path: Path) -> tuple[list[tuple], list[tuple]]:
    """The samples and metrics tables as stored (run ids and creation times included)."""
    with sqlite3.connect(f"{(store_path / 'results.sqlite').as_uri()}?mode=ro", uri=True) as conn:
        samples = conn.execute("SELECT spec_key, image_sha256, run_id, created FROM samples "
                               "ORDER BY spec_key").fetchall()
        metrics = conn.execute('SELECT spec_key, metric, version, "values", run_id, created FROM metrics '
                               "ORDER BY spec_key, metric").fetchall()
    return samples, metrics


@dataclass
class Runs:
    cache: Path
    xdist: Path
    shards: list[Path]
    merged: Path
    xdist_output: str
    shard_outputs: list[str]
    merge_output: str
    merged_before: tuple  # rows(merged) after `idrift merge`, before the claims ran on it
    compare_output: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    root = tmp_path_factory.mktemp("scale_out")
    cache = root / "cache"
    xdist, merged = root / "xdist", root / "merged"
    shards = [root / "shard0", root / "shard1"]
    # Materialise the identity set once, so that the concurrent runs below only read it.
    from idrift.data.identities import builtin_identity_set

    builtin_identity_set(cache)

    xdist_run = _pytest(cache, xdist, "-v", "-n", "2", "--idrift-fresh")
    shard_runs = [_pytest(cache, shard, "-q", "-rs", "--idrift-fresh", "--idrift-shard", f"{i}/2")
                  for i, shard in enumerate(shards)]
    try:
        shard_outputs = [_finish(proc) for proc in shard_runs]
        merge = _idrift(cache, "merge", *map(str, shards), "--out", str(merged))
        assert merge.returncode == 0, merge.stdout + merge.stderr
        merged_before = rows(merged)
        compare_output = _finish(_pytest(cache, merged, "-q"))
        xdist_output = _finish(xdist_run)
    finally:
        for proc in (xdist_run, *shard_runs):  # a failed step leaves no run behind
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return Runs(cache, xdist, shards, merged, xdist_output, shard_outputs, merge.stdout, merged_before,
                compare_output)


def test_xdist_run_holds_the_whole_grid(runs):
    samples = snapshot(runs.xdist)
    assert len(samples) == GRID
    assert all(status == "ok" for status, _, _ in samples.values())
    assert all({"pixels", "id_sim"} <= set(metrics) for _, _, metrics in samples.values())
    assert "figure5_guidance" in runs.xdist_output and "-> PASS" in runs.xdist_output  # the workers' claim summary


def test_two_xdist_workers_equal_one_process_and_merged_shards_equal_the_unsharded_run(runs):
    merged = snapshot(runs.merged)
    assert len(merged) == GRID
    assert merged == snapshot(runs.xdist)  # keys, image pixel hashes, metric versions and values


def test_xdist_workers_share_one_store_safely(runs):
    # Both workers wrote into one SQLite store at once (the claim test generates the samples it finds
    # missing while the other worker generates them too); the file is sound and nothing is lost.
    store = ResultsStore(runs.xdist, readonly=True)
    try:
        assert store.integrity_check() == "ok"
        opened = store.runs()
        records = store.samples(status=None)
    finally:
        store.close()
    writers = {r.run_id for r in records} | {m["run_id"] for r in records for m in r.metrics.values()}
    assert len(opened) == 2, "each worker opens the store once; the controller only wipes it (--idrift-fresh)"
    assert len(writers) == 2, f"expected both workers to have written samples or metrics, got runs {writers}"


def test_xdist_shares_one_backbones_runs_between_the_workers(runs):
    # `-n 2` without --dist: the plugin picks --dist loadgroup, and each budget run is its own group, so
    # the grid's runs (all FLUX.1-schnell here) are shared by both workers, not kept on one.
    lines = re.findall(r"\[(gw\d)\] \[\s*\d+%\] PASSED \S+::test_sample\[", runs.xdist_output)
    assert len(lines) == GRID, runs.xdist_output[-3000:]
    assert sorted(set(lines)) == ["gw0", "gw1"], f"one backbone's runs ran only on {sorted(set(lines))}"


def test_xdist_groups():
    budget = RunSpec(backbone="schnell", steps=4, guidance=0.0, alpha=1.0, prompt_id="portrait", prompt="a portrait",
                     identity="id0", seed=0, width=64, height=64, dtype="float32", profile="tiny")
    other_seed = budget.replace(seed=1)
    # budget runs: one group each (shared out over the workers); with one resident backbone: by backbone
    assert xdist_group(budget) == budget.key != xdist_group(other_seed)
    assert xdist_group(budget, "offload") == xdist_group(other_seed, "offload-8bit") == "schnell"
    # the steps of one trajectory run share its group in every memory mode
    steps = [budget.replace(backbone="dev", steps=k, mode="trajectory", trajectory_of=28) for k in (1, 4, 28)]
    for memory in ("off", "offload"):
        assert {xdist_group(s, memory) for s in steps} == {_run_key(steps[0])}
    assert xdist_group(steps[0]) != xdist_group(steps[0].replace(seed=1))


def test_shards_partition_the_grid(runs):
    grid = set(snapshot(runs.xdist))
    shard_keys = [set(snapshot(shard)) for shard in runs.shards]
    assert all(shard_keys), "each shard holds some samples"
    assert not shard_keys[0] & shard_keys[1], "a sample ran in both shards"
    assert shard_keys[0] | shard_keys[1] == grid
    for i, shard in enumerate(runs.shards):
        store = ResultsStore(shard, readonly=True)
        try:
            specs = [RunSpec(**r.spec) for r in store.samples(status=None)]
        finally:
            store.close()
        assert all(in_shard(_run_key(spec), i, 2) for spec in specs)


def test_shard_jobs_leave_the_claims_to_the_merged_store(runs):
    for output in runs.shard_outputs:
        assert re.search(r"SKIPPED \[1\] \S+: --idrift-shard: this job runs only its shard's samples", output), output


def test_merge_reports_counts(runs):
    assert f"added {GRID} samples" in runs.merge_output, runs.merge_output
    assert "0 samples held by more than one store agreed" in runs.merge_output
    assert f"holds {GRID} samples (0 failed; 0 before)" in runs.merge_output


def test_claims_on_the_merged_store_generate_nothing(runs):
    # The compare run found every sample and every metric: no row was added or rewritten.
    assert rows(runs.merged) == runs.merged_before
    assert re.search(rf"\b{GRID + 1} passed", runs.compare_output) and "-> PASS" in runs.compare_output


def test_merge_refuses_a_conflicting_duplicate(runs, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(runs.shards[0], tampered)
    with sqlite3.connect(tampered / "results.sqlite") as conn:
        key, values = conn.execute("SELECT spec_key, \"values\" FROM metrics WHERE metric = 'pixels' "
                                   "ORDER BY spec_key LIMIT 1").fetchone()
        conn.execute("UPDATE metrics SET \"values\" = ? WHERE spec_key = ? AND metric = 'pixels'",
                     (values.replace('"pixel_mean":', '"pixel_mean":1'), key))
    out = tmp_path / "out"
    proc = _idrift(runs.cache, "merge", str(runs.shards[0]), str(tampered), "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("idrift merge: error: merge refused: spec key " + key), proc.stderr
    assert "value of metric 'pixels'" in proc.stderr and str(tampered) in proc.stderr
    assert snapshot(out) == {}, "a refused merge writes nothing"


def test_merge_usage_errors_are_one_line(runs, tmp_path):
    for args, message in (
        ([str(tmp_path / "missing")], "is not a results store"),
        ([str(runs.shards[0]), str(runs.shards[0])], "a store is given twice"),
        ([str(runs.shards[0])], "is also a source"),
    ):
        out = runs.shards[0] if message == "is also a source" else tmp_path / "out"
        proc = _idrift(runs.cache, "merge", *args, "--out", str(out))
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# ---- GPU pinning: the choice is plain code; the pin itself needs GPUs (see test_workers_get_distinct_gpus).

def test_worker_gpu_choice():
    assert worker_index("gw0") == 0 and worker_index("gw12") == 12
    assert worker_index(None) is None and worker_index("master") is None
    with pytest.raises(IdriftError, match="not a pytest-xdist worker id"):
        worker_index("worker-1")
    gpus = ["0", "1", "2", "3"]
    assert [choose_gpu(f"gw{k}", gpus) for k in range(6)] == ["0", "1", "2", "3", "0", "1"]
    assert choose_gpu("gw1", ["GPU-aaaa", "GPU-bbbb"]) == "GPU-bbbb"  # a user's CUDA_VISIBLE_DEVICES, as given
    assert choose_gpu("gw1", []) is None and choose_gpu(None, gpus) is None


WORKER_ENV_TEST = """
import os
from pathlib import Path

import pytest


@pytest.mark.parametrize("case", range(4))  # work for both workers
def test_env(worker_id, case):
    seen = f"{os.environ.get('CUDA_VISIBLE_DEVICES')} {os.environ.get('CUDA_DEVICE_ORDER')}"
    (Path(__file__).parent / f"{worker_id}.env").write_text(seen)
"""
# The controller believes it sees GPUs "7" and "9" (a stand-in for NVML on this CPU machine: the only
# double here); its workers see none, as on any CPU machine, so their own pin leaves them alone.
CONTROLLER_SEES_TWO_GPUS = """
import os
if not os.environ.get("PYTEST_XDIST_WORKER"):
    import idrift.distributed
    idrift.distributed.visible_gpus = lambda: ["7", "9"]
pytest_plugins = ["idrift.pytest_plugin"]
"""


def test_each_xdist_worker_starts_with_its_gpu_in_cuda_visible_devices(tmp_path):
    (tmp_path / "conftest.py").write_text(CONTROLLER_SEES_TWO_GPUS)
    (tmp_path / "test_env.py").write_text(WORKER_ENV_TEST)
    env = _env(tmp_path / "cache")
    for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = {w: (tmp_path / f"{w}.env").read_text() for w in ("gw0", "gw1")}
    assert seen == {"gw0": "7 PCI_BUS_ID", "gw1": "9 PCI_BUS_ID"}


def test_a_users_own_gateways_are_left_alone():
    from argparse import Namespace

    from idrift.distributed import assign_worker_gpus, worker_gateway_specs

    mine = Namespace(numprocesses=None, tx=["popen//python=python3.12"] * 2)  # --tx given by the user
    assert assign_worker_gpus(mine) is None and mine.tx == ["popen//python=python3.12"] * 2
    assert assign_worker_gpus(Namespace(numprocesses=0, tx=[])) is None
    specs = worker_gateway_specs(3, ["GPU-aaaa", "GPU-bbbb"])
    assert [s.split("//")[1] for s in specs] == [
        "env:CUDA_VISIBLE_DEVICES=GPU-aaaa", "env:CUDA_VISIBLE_DEVICES=GPU-bbbb", "env:CUDA_VISIBLE_DEVICES=GPU-aaaa"]


def test_pin_outside_xdist_and_on_a_machine_without_gpu(tmp_path):
    from idrift.distributed import pin_xdist_worker

    assert pin_xdist_worker("master") is None  # the xdist controller, or no xdist: nothing to pin
    code = ("import os; from idrift.distributed import pin_xdist_worker; import torch; n = torch.cuda.device_count(); "
            "print(pin_xdist_worker(), os.environ.get('CUDA_VISIBLE_DEVICES'), n)")
    env = _env(tmp_path)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    worker = subprocess.run([sys.executable, "-c", code], env={**env, "PYTEST_XDIST_WORKER": "gw1"},
                            capture_output=True, text=True, check=True)
    pinned, visible, count = worker.stdout.split()
    if count == "0":
        assert (pinned, visible) == ("None", "None")  # no GPU: the worker is left alone
    else:
        assert pinned == visible == str(1 % int(count))  # gw1: GPU 1 mod the machine's count, and only that one


WORKER_GPU_TEST = """
import os
from pathlib import Path

import pytest
import torch

from idrift.distributed import worker_cuda_device


@pytest.mark.parametrize("case", range(4))  # work for both workers
def test_gpu(worker_id, case):
    # Which physical GPU the session of this worker allocates on.
    device = torch.device(worker_cuda_device() or "cuda")
    x = torch.ones(1, device=device)
    runtime = ",".join(str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count()))
    seen = (f"{os.environ.get('CUDA_VISIBLE_DEVICES')} {torch.cuda.get_device_properties(x.device).uuid} "
            f"{device} {runtime} {os.environ.get('CUDA_DEVICE_ORDER')}")  # the last three: for diagnosis
    (Path(__file__).parent / f"{worker_id}.seen").write_text(seen)
"""
# Another library starting the CUDA driver before the plugin pins the worker (the H100 host's case: the
# variable set afterwards no longer applies).
DRIVER_FIRST_CONFTEST = 'import ctypes\nctypes.CDLL("libcuda.so.1").cuInit(0)\n'


@pytest.mark.gpu
@pytest.mark.parametrize("driver_first", [False, True], ids=["clean-start", "driver-started-first"])
def test_workers_get_distinct_gpus(tmp_path, driver_first):
    """On a machine with two or more GPUs: `pytest -n 2` with the idrift plugin gives each worker its own."""
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    (tmp_path / "conftest.py").write_text((DRIVER_FIRST_CONFTEST if driver_first else "")
                                          + 'pytest_plugins = ["idrift.pytest_plugin"]\n')
    (tmp_path / "test_gpu.py").write_text(WORKER_GPU_TEST)
    env = _env(tmp_path / "cache")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    missing = [w for w in ("gw0", "gw1") if not (tmp_path / f"{w}.seen").exists()]
    assert not missing, f"workers {missing} ran no test; the run said:\n{proc.stdout}{proc.stderr}"
    seen = {w: (tmp_path / f"{w}.seen").read_text().split() for w in ("gw0", "gw1")}
    assert seen["gw0"][0] == "0" and seen["gw1"][0] == "1", seen  # the variable names each worker's GPU
    assert seen["gw0"][1] != seen["gw1"][1], f"both workers ran on the same physical GPU: {seen}"


def test_timed_families_are_the_ones_skipped_under_xdist():
    """Both timed families (latency, fast_paths) need one process; the sampled families spread over workers.
    The items are stand-ins holding what the plugin reads of a pytest Item: its module's CLAIM_FAMILY."""
    from types import SimpleNamespace

    from idrift.pytest_plugin import _timed

    def item(family):
        return SimpleNamespace(module=SimpleNamespace(CLAIM_FAMILY=family))

    assert _timed(item("latency")) and _timed(item("fast_paths"))
    assert not _timed(item("guidance")) and not _timed(SimpleNamespace(module=None))
