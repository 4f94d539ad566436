"""`pytest benchmarks` with pytest-benchmark's options, as its users run it (real subprocesses, tiny profile):
the latency rounds as options and IDRIFT_* variables, the claims' figures, intervals and verdict words in
`--benchmark-json`, and the timed rounds stored with each arm's sample as the metric `latency`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from idrift.metrics.latency import LATENCY_METRIC, LATENCY_VERSION
from idrift.verdicts import WORDS

ROOT = Path(__file__).resolve().parent.parent
LATENCY = "benchmarks/test_latency.py"

pytestmark = pytest.mark.slow  # three tiny arms timed a few rounds each


def run_pytest(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = dict(os.environ, IDRIFT_CACHE=str(tmp_path / "cache"), **(env or {}))
    environ.pop("PYTEST_XDIST_WORKER", None)  # pytest-benchmark turns itself off under xdist
    environ["PYTHONPATH"] = str(ROOT) + os.pathsep + environ.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider",
                           "--idrift-store", str(tmp_path / "store")],
                          cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def latency_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("latency")
    out = tmp / "bench.json"
    # The rounds from the environment, the warm-up from the option: both ways users set them.
    proc = run_pytest(tmp, LATENCY, "--idrift-warmup-rounds", "0", f"--benchmark-json={out}",
                      env={"IDRIFT_ROUNDS": "2"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, proc, json.loads(out.read_text())


def test_rounds_from_option_and_environment(latency_run):
    _, _, doc = latency_run
    benches = {b["extra_info"]["idrift_arm"]: b for b in doc["benchmarks"]}
    assert set(benches) == {"dev-28", "schnell-4", "dev-4"}
    for bench in benches.values():
        assert bench["stats"]["rounds"] == 2  # warm-up rounds are not in pytest-benchmark's statistics
        assert (bench["extra_info"]["rounds"], bench["extra_info"]["warmup_rounds"]) == (2, 0)


def test_claims_figures_intervals_and_words_in_the_json(latency_run):
    _, _, doc = latency_run
    claim = doc["idrift"]["claims"]["latency"]
    assert doc["idrift"]["profile"] == "tiny"
    assert claim["verdict"] in WORDS and all(e["verdict"] in WORDS for e in claim["expectations"])
    speedup = claim["figures"]["speedup"]
    assert speedup["n"] == 2 and speedup["value"] > 0 and "bootstrap" in speedup["method"]
    for bench in doc["benchmarks"]:
        info = bench["extra_info"]
        arm = info["idrift_arm"]
        assert info["idrift_claims"]["latency"] == claim
        figure = info["idrift_figure"]
        assert figure["metric"] == f"latency_s[{arm}]"
        # The figure is the median of the very rounds pytest-benchmark timed (its own clock, a hair apart).
        assert figure["value"] == pytest.approx(bench["stats"]["median"], rel=0.05)


def test_rounds_are_stored_with_the_samples(latency_run):
    from idrift.store import ResultsStore

    tmp, _, doc = latency_run
    keys = {b["extra_info"]["idrift_arm"]: b["extra_info"]["idrift_spec"] for b in doc["benchmarks"]}
    with ResultsStore(tmp / "store", readonly=True) as store:
        for arm, spec in keys.items():
            [record] = [r for r in store.samples(backbone=spec["backbone"], steps=spec["steps"])
                        if r.spec["prompt_id"] == spec["prompt_id"] and r.spec["guidance"] == spec["guidance"]]
            entry = record.metrics[LATENCY_METRIC]
            assert entry["version"] == LATENCY_VERSION
            values = entry["values"]
            assert len(values["seconds"]) == values["rounds"] == 2 and values["warmup_rounds"] == 0
            assert len(values["stage_rounds"]) == 2 and "backbone" in values["stages"]
            assert values["device"] == "cpu" and values["gpu_peak_bytes"] is None and values["rss_peak_bytes"] > 0
            figure = doc["idrift"]["claims"]["latency"]["figures"][f"latency_s[{arm}]"]
            assert figure["value"] == pytest.approx(sorted(values["seconds"])[0] / 2 + sorted(values["seconds"])[1] / 2)


def test_the_claim_reads_stored_rounds_without_retiming(latency_run):
    """The claim test alone (no benchmark ran, so pytest-benchmark writes no JSON) evaluates the rounds the
    store holds: its figures, as the test reports them to JUnit XML, are the timed run's."""
    import ast
    import xml.etree.ElementTree as ET

    tmp, _, doc = latency_run
    junit = tmp / "claim.xml"
    proc = run_pytest(tmp, f"{LATENCY}::test_claim", f"--junitxml={junit}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    [prop] = [p for p in ET.parse(junit).iter("property") if p.get("name") == "idrift_figures"]
    figures = ast.literal_eval(prop.get("value"))
    assert {k: pytest.approx(v["value"]) for k, v in doc["idrift"]["claims"]["latency"]["figures"].items()} == figures


@pytest.mark.parametrize(("args", "env", "message"), [
    ((), {"IDRIFT_ROUNDS": "0"}, "IDRIFT_ROUNDS='0': expected a whole number >= 1"),
    ((), {"IDRIFT_WARMUP_ROUNDS": "x"}, "IDRIFT_WARMUP_ROUNDS='x': expected a whole number >= 0"),
    (("--idrift-rounds", "0"), {}, "--idrift-rounds must be a whole number >= 1, got 0"),
])
def test_bad_rounds_are_one_line(tmp_path, args, env, message):
    proc = run_pytest(tmp_path, LATENCY, *args, env=env)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
