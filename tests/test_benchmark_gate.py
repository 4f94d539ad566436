"""`pytest benchmarks` as users run it (a real subprocess on the tiny profile): it passes against
baselines/tiny-cpu.json and fails, with a readable message, once a stored value is perturbed past
its tolerance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAMILY = "benchmarks/test_guidance.py"  # the cheapest family: 5 guidance scales x 6 samples of schnell-4


def run_benchmarks(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, IDRIFT_CACHE=str(tmp_path / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "pytest", FAMILY, "-q", "-p", "no:cacheprovider",
         "--idrift-store", str(tmp_path / "store"), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("bench")


def test_passes_against_the_stored_baseline(workdir):
    result = run_benchmarks(workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "passed" in result.stdout
    assert "samples_varying_with_guidance == 0" in result.stdout and "-> PASS" in result.stdout


def test_fails_readably_when_a_baseline_value_is_perturbed(workdir):
    baseline = json.loads((ROOT / "baselines" / "tiny-cpu.json").read_text())
    metric = baseline["claims"]["figure5_guidance"]["metrics"]["pixel_mean[schnell-4-g0]"]
    # Shift every stored sample by 4x the tolerance: the paired interval lies wholly outside it.
    shift = 4 * metric["tolerance"]
    metric["samples"] = {k: v + shift for k, v in metric["samples"].items()}
    metric["aggregate"] += shift
    perturbed = workdir / "perturbed.json"
    perturbed.write_text(json.dumps(baseline))

    result = run_benchmarks(workdir, "--idrift-baseline", str(perturbed))  # the store is warm: no regeneration
    assert result.returncode == 1, result.stdout[-3000:]
    out = result.stdout
    assert "FAIL: figure5_guidance / pixel_mean[schnell-4-g0]" in out
    for field in ("baseline", "candidate", "difference", "interval", "tolerance"):
        assert field in out
    assert "1 failed" in out


def test_a_malformed_baseline_is_a_clear_error(workdir):
    bad = workdir / "bad.json"
    bad.write_text('{"schema_version": 1, "claims": ')
    result = run_benchmarks(workdir, "--idrift-baseline", str(bad))
    assert result.returncode != 0
    assert "bad.json" in result.stdout + result.stderr
    assert "line 1" in result.stdout + result.stderr  # where the JSON breaks
