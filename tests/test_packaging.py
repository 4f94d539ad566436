"""The package outside the checkout: the wheel built from this tree carries the baselines, the claim
benchmarks and the pytest11 entry point, and an unpacked wheel finds them with the checkout out of reach
(subprocesses with the wheel alone on PYTHONPATH, run in a temporary folder). `.ci/wheel_check` does the
same with a real install into a fresh virtual environment and runs the main commands there."""

from __future__ import annotations

import email
import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from idrift.baselines.io import baselines_dir, load_baseline

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Without build isolation when this environment has setuptools (no download); a fresh venv fetches it.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(out), str(REPO)],
                   check=True, capture_output=True, cwd=out)
    (path,) = out.glob("idrift-*.whl")
    return path


@pytest.fixture(scope="module")
def unpacked(wheel, tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def outside(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `python *args` in `cwd` with the unpacked wheel first on the path and the checkout nowhere on it."""
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(cwd), "PYTHONNOUSERSITE": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_checkout_baselines_are_the_top_level_folder():
    assert baselines_dir() == REPO / "baselines"
    assert {"paper", "tiny-cpu", "h100-synthetic"} <= {p.stem for p in baselines_dir().glob("*.json")}


def test_wheel_carries_baselines_benchmarks_and_the_plugin_entry_point(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for src in sorted((REPO / "baselines").glob("*.json")):
            assert zf.read(f"idrift/baselines/data/{src.name}") == src.read_bytes(), src.name
        for src in sorted((REPO / "benchmarks").glob("*.py")):
            assert f"idrift/benchmarks/{src.name}" in names, src.name
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = zf.read(info).decode()
        meta = email.message_from_bytes(zf.read(info.replace("entry_points.txt", "METADATA")))
    assert "[pytest11]\nidrift.pytest_plugin = idrift.pytest_plugin" in entry_points
    assert "idrift = idrift.cli:main" in entry_points
    requires = meta.get_all("Requires-Dist")
    hypothesis = [r for r in requires if r.startswith("hypothesis")]
    assert hypothesis and all('extra == "test"' in r for r in hypothesis), hypothesis


def test_unpacked_wheel_finds_its_own_baselines(unpacked, tmp_path):
    code = ("from idrift.baselines.io import baselines_dir, resolve_baseline; "
            "print(baselines_dir()); print(resolve_baseline('tiny-cpu', baselines_dir()))")
    proc = outside(unpacked, tmp_path, "-c", code)
    assert proc.returncode == 0, proc.stderr
    where, tiny = proc.stdout.split()
    assert Path(where) == unpacked / "idrift" / "baselines" / "data"
    assert load_baseline(tiny).to_dict() == load_baseline(REPO / "baselines" / "tiny-cpu.json").to_dict()


def test_pytest_plugin_registers_once_from_the_wheel_and_in_the_checkout(unpacked, tmp_path):
    # From the wheel: the entry point alone registers the plugin; it parametrizes the benchmark's samples.
    proc = outside(unpacked, tmp_path, "-m", "pytest", "--pyargs", "idrift.benchmarks.test_alpha", "--co", "-q",
                   "--trace-config", "-p", "no:cacheprovider")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("PLUGIN registered: <module 'idrift.pytest_plugin'") == 1, proc.stdout[-3000:]
    collected = re.search(r"(\d+) tests? collected", proc.stdout)
    assert collected and int(collected.group(1)) > 2, proc.stdout[-1000:]  # the samples' grid, then the claim
    # In the checkout with an installed idrift: conftest.py names the module the entry point registered.
    proc = outside(unpacked, REPO, "-m", "pytest", "benchmarks/test_alpha.py", "--co", "-q", "--trace-config",
                   "-p", "no:cacheprovider")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("PLUGIN registered: <module 'idrift.pytest_plugin'") == 1, proc.stdout[-3000:]
