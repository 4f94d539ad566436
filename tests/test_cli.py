"""`idrift run`, `compare`, `bless` and `report` as a user runs them: real subprocesses, tiny profile.

The run is the expensive part, so the module shares one run directory: three cheap claims
(figure5_guidance, table1_backbone_swap, latency) on a one-identity manifest, smoke tier.
Every other command reads that directory; the tests that change files work on copies.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from interrupts import interrupted_exit, sigint_as_at_a_terminal
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CLAIMS = "figure5_guidance,table1_backbone_swap,latency"
N_PROMPTS = 3  # eval_v1: portrait, beach, suit


pytestmark = pytest.mark.slow  # about a minute on two CPU cores, most of it the shared run


def _env(cwd: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["IDRIFT_CACHE"] = str(cwd / "cache")  # nothing of the tests lands in the repository's .idrift
    return env


def idrift(*args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "idrift.cli", *map(str, args)], cwd=cwd, env=_env(cwd),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def manifest(workdir) -> Path:
    """The built-in identity set cut to its first identity: a third of the samples of the smoke tier."""
    from idrift.data.identities import (
        builtin_identity_set,
        load_manifest,
        write_manifest,
    )

    full = load_manifest(builtin_identity_set(workdir / "identities"))
    return write_manifest(full.path.parent / "one.json", full.entries[:1],
                          created_with={"tool": "tests/test_cli.py: first identity of the built-in set"})


@pytest.fixture(scope="module")
def run_args(workdir, manifest) -> list:
    return ["run", "--profile", "tiny", "--claims", CLAIMS, "--tier", "smoke", "--out", workdir / "run",
            "--identities", manifest]


@pytest.fixture(scope="module")
def first_run(workdir, run_args) -> subprocess.CompletedProcess:
    proc = idrift(*run_args, cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def run_dir(workdir, first_run) -> Path:
    return workdir / "run"


@pytest.fixture(scope="module")
def blessed(workdir, run_dir) -> tuple[Path, subprocess.CompletedProcess]:
    path = workdir / "baselines" / "blessed.json"
    proc = idrift("bless", run_dir, "--name", path, "--yes", cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return path, proc


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


# ----------------------------------------------------------------------------------------------- run


def test_run_writes_results_with_provenance(run_dir, first_run):
    doc = results(run_dir)
    assert doc["complete"] is True
    assert set(doc["claims"]) == set(CLAIMS.split(","))
    assert doc["command"].startswith("idrift run --profile tiny --claims " + CLAIMS)
    # One identity x 3 prompts per arm: 5 guidance arms, 2 backbone-swap arms, 3 latency arms (portrait only).
    assert {c: len(e["spec_keys"]) for c, e in doc["claims"].items()} == {
        "figure5_guidance": 5 * N_PROMPTS, "table1_backbone_swap": 2 * N_PROMPTS, "latency": 3}
    for entry in doc["claims"].values():
        assert entry["provenance"]["profile"] == "tiny"
        assert entry["provenance"]["weights"]["flux_dev"].startswith("tiny:")
        for key in entry["spec_keys"]:
            assert (run_dir / "store" / "images" / f"{key}.png").stat().st_size > 0
    guidance = doc["claims"]["figure5_guidance"]
    assert guidance["figures"]["samples_varying_with_guidance"] == 0.0
    assert [(o["metric"], o["status"]) for o in guidance["expectations"]] == [
        ("samples_varying_with_guidance", "PASS"), ("id_sim_range", "NOT JUDGEABLE")]
    assert guidance["verdict"] == "NOT JUDGEABLE"
    assert guidance["verdict_parts"] == "structural PASS; identity NOT JUDGEABLE"
    assert len(guidance["samples"]["id_sim[schnell-4-g0]"]) == N_PROMPTS
    # Latency: timed by the one timer (the CPU's default rounds after a warm-up), figures as the pytest path
    # derives them.
    from idrift.metrics.latency import DEFAULT_ROUNDS

    latency = doc["latency"]
    rounds = DEFAULT_ROUNDS["cpu"][1]
    assert set(latency) == {"dev-28", "schnell-4", "dev-4"}
    assert all(len(t["seconds"]) == rounds for t in latency.values())
    figures = doc["claims"]["latency"]["figures"]
    assert figures["latency_s[dev-28]"] == pytest.approx(np.median(latency["dev-28"]["seconds"]))
    assert figures["speedup"] == pytest.approx(figures["latency_s[dev-28]"] / figures["latency_s[schnell-4]"])
    # No bound on the ratio itself: CPU timings of tiny models under a loaded CI machine are not a
    # speed claim (the latency benchmarks judge speed on a GPU). It failed here once at load ~5.
    assert figures["speedup"] > 0


def test_run_prints_summary_and_progress(first_run):
    out = first_run.stdout
    # The structural check ran and passed, the identity one could not run: the claim is not judged
    # as a whole (it used to print PASS here), and its line shows each part.
    assert "NOT JUDGEABLE  figure5_guidance" in out and "structural PASS; identity NOT JUDGEABLE" in out
    assert "NOT JUDGEABLE  table1_backbone_swap" in out
    assert "samples_varying_with_guidance=0" in out
    assert "not judgeable because:" in out and "--idrift-profile real" in out
    assert "no generated image has a face" in out
    # tqdm's bar from Runner.ensure: claim, count, rate.
    assert "figure5_guidance: 100%" in first_run.stderr and "img/s" in first_run.stderr
    # No warning through a bar (issue 22): held, logged to OUT/warnings.log, printed once after the bars.
    # (An import-time notice before the first bar, e.g. diffusers' FutureWarning, breaks no bar.)
    bars, held, after = first_run.stderr.partition("warnings while the bars ran")
    bars = bars[bars.index("%|"):]
    assert not re.search(r"(?i)warning|deprecat", bars), bars
    if held:
        assert "warnings.log" in after.splitlines()[0]
    no_traceback(first_run)


def test_ctrl_c_keeps_finished_work_and_rerun_resumes(workdir, manifest):
    """Ctrl-C once the first claim is written: exit 130 saying how to resume, that claim in
    results.json (the run marked incomplete), its samples in the store. The same command then
    finishes the run without regenerating any of them."""
    from idrift.store import ResultsStore

    out = workdir / "interrupted"
    # table1_dev4_diagnostic: 2 samples; figure5_guidance: 15 more, seconds of work left to interrupt.
    args = ["run", "--claims", "table1_dev4_diagnostic,figure5_guidance", "--out", out, "--identities", manifest]
    proc = subprocess.Popen([sys.executable, "-m", "idrift.cli", *map(str, args)], cwd=workdir, env=_env(workdir),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_at_a_terminal)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not (out / "results.json").is_file():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert interrupted_exit(proc.returncode), stdout + stderr
    assert "interrupted; finished samples are kept, rerun the same command to resume" in stderr
    assert "Traceback" not in stderr
    doc = results(out)
    assert doc["complete"] is False and list(doc["claims"]) == ["table1_dev4_diagnostic"]
    with ResultsStore(out / "store", readonly=True) as store:
        kept = {s.spec_key: s.run_id for s in store.samples()}
    assert set(doc["claims"]["table1_dev4_diagnostic"]["spec_keys"]) <= set(kept)
    assert len(kept) < 2 + 5 * N_PROMPTS

    resumed = idrift(*args, cwd=workdir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    doc = results(out)
    assert doc["complete"] is True and set(doc["claims"]) == {"table1_dev4_diagnostic", "figure5_guidance"}
    assert doc["claims"]["figure5_guidance"]["figures"]["samples_varying_with_guidance"] == 0.0
    with ResultsStore(out / "store", readonly=True) as store:
        after = {s.spec_key: s.run_id for s in store.samples()}
    assert {key: after[key] for key in kept} == kept  # nothing finished before Ctrl-C was generated again
    assert len(after) == len({k for e in doc["claims"].values() for k in e["spec_keys"]})


# -------------------------------------------------------------------------------------------- report


def test_report_writes_tables_and_figures(workdir, run_dir):
    from idrift.report import (
        DPI,
        FIGURE_SIZES,
        GRID_FILE,
        LABEL_H,
        PAD,
        PANEL,
        grid_size,
    )

    out = workdir / "report"
    proc = idrift("report", run_dir, "--out", out, cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (out / "report.md").read_text()
    # Table 1: the paper's numbers beside the run's.
    assert "| FLUX.1-dev, 28 steps (n=3) | 0.5872 | 0 [0, 0] | 0.7253 |" in text  # the run's value with its interval
    assert "speed-up 5.9x" in text
    assert "no generated image has a face" in text
    # What the run lacks is listed, with the command that adds it, never dropped.
    missing = text.split("## Missing", 1)[1]
    for name in ("figure5_drift.png", "figure4_alpha.png", "figure6_tiers.png", "figures6_7_drift_by_tier.png",
                 "figures6_7_heatmap.png", "text_identity_competition.png", "Table 2"):
        assert f"**{name}**" in missing
        assert not (out / name).exists()
    assert "--claims figure5_drift" in missing

    drawn = ("figure3_per_identity.png", "figure5_guidance.png")
    for name in drawn:
        assert f"]({name})" in text
        with Image.open(out / name) as image:
            assert image.format == "PNG"
            w, h = FIGURE_SIZES[name]
            assert image.size == (round(w * DPI), round(h * DPI))
            assert "profile tiny" in image.text["Description"]  # provenance travels with the picture
            assert np.asarray(image.convert("L")).std() > 5  # something is drawn
    # The grid: one identity row; reference + (dev-28, schnell-4) per prompt.
    columns = 1 + 2 * N_PROMPTS
    with Image.open(out / GRID_FILE) as image:
        assert image.size == grid_size(1, columns)
        pixels = np.asarray(image.convert("RGB")).astype(float)
    top = LABEL_H + PAD
    panels = [pixels[top:top + PANEL, x:x + PANEL] for x in (PAD + c * (PANEL + PAD) for c in range(columns))]
    assert all(panel.std() > 10 for panel in panels)  # every panel holds an image, not the blank fill


# -------------------------------------------------------------------------------- bless and compare


def test_bless_writes_a_valid_baseline(run_dir, blessed):
    from idrift.baselines.io import load_baseline

    path, proc = blessed
    baseline = load_baseline(path)  # validates against the schema
    assert {"figure5_guidance", "table1_backbone_swap"} <= set(baseline.claims)
    assert baseline.provenance["command"] == results(run_dir)["command"]
    assert baseline.provenance["profile"] == "tiny"
    guidance = baseline.claims["figure5_guidance"].metrics
    assert guidance["samples_varying_with_guidance"].aggregate == 0.0
    assert len(guidance["pixel_mean[schnell-4-g0]"].samples) == N_PROMPTS
    assert "+ claim figure5_guidance" in proc.stdout and f"wrote {path}" in proc.stdout


def test_compare_identical_run_passes(workdir, run_dir, blessed):
    path, _ = blessed
    proc = idrift("compare", run_dir, "--baseline", path, cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("claim "))
    for column in ("baseline", "candidate", "difference", "interval", "tolerance", "verdict"):
        assert column in header
    row = next(line for line in lines if "samples_varying_with_guidance" in line)
    assert row.split()[-1] == "PASS"
    assert lines[-1].startswith("PASS:") and " fail" not in lines[-1]
    # ID_sim 0 of faceless images on both sides cannot move on this profile: not informative, not a pass.
    faceless = next(line for line in lines if line.startswith("table1_backbone_swap") and " id_sim_delta " in line)
    assert faceless.endswith("not informative") and "not informative" in lines[-1]


def test_latency_is_read_from_the_store(workdir, run_dir):
    """The timed rounds live with the arms' samples (the metric `latency`): re-evaluating the run from its
    store gives the latency figures without results.json's copy of the timings."""
    from idrift.run_folder import load_run
    from idrift.store import ResultsStore

    doc = results(run_dir)
    with ResultsStore(run_dir / "store", readonly=True) as store:
        stored = [store.get(key).metrics["latency"]["values"]["seconds"]
                  for key in doc["claims"]["latency"]["spec_keys"]]
    assert sorted(map(sorted, stored)) == sorted(sorted(t["seconds"]) for t in doc["latency"].values())
    copy = workdir / "run-no-latency-copy"
    if not copy.exists():
        import shutil

        shutil.copytree(run_dir, copy)
    edited = results(copy)
    edited["latency"] = {}
    (copy / "results.json").write_text(json.dumps(edited))
    figures = load_run(copy).results()["latency"].figures
    assert figures == pytest.approx(doc["claims"]["latency"]["figures"])


def test_compare_writes_github_action_benchmark_lists(workdir, run_dir, blessed):
    path, _ = blessed
    lists = {}
    for direction in ("bigger", "smaller"):
        proc = idrift("compare", run_dir, "--baseline", path, "--format", "github-action-benchmark",
                      "--direction", direction, cwd=workdir)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lists[direction] = {entry["name"]: entry for entry in json.loads(proc.stdout)}
        for entry in lists[direction].values():  # the fields github-action-benchmark's custom tools read
            assert set(entry) <= {"name", "unit", "value", "range", "extra"} and isinstance(entry["value"], float)
            assert entry["extra"].startswith("verdict: ")
    smaller, bigger = lists["smaller"], lists["bigger"]
    assert smaller["latency / latency_s[dev-28]"]["unit"] == "s"
    assert smaller["latency / latency_s[dev-28]"]["range"].startswith("95% interval [")
    assert bigger["latency / speedup"]["unit"] == "x"
    assert "table1_backbone_swap / id_sim[schnell-4]" in bigger and "table1_backbone_swap / lpips_delta" in smaller
    assert not smaller.keys() & bigger.keys()
    assert not any("samples_varying_with_guidance" in name for name in {**smaller, **bigger})  # "equal": neither
    proc = idrift("compare", run_dir, "--baseline", path, "--format", "github-action-benchmark", cwd=workdir)
    assert proc.returncode == 2 and "needs --direction bigger or smaller" in proc.stderr
    no_traceback(proc)


def _planted(blessed, workdir, name: str, change) -> Path:
    from idrift.baselines.io import load_baseline, write_baseline

    baseline = load_baseline(blessed[0])
    change(baseline)
    return write_baseline(baseline, workdir / "baselines" / name)


def test_compare_flags_planted_aggregate_regression(workdir, run_dir, blessed):
    def plant(baseline):  # an exact structural figure (tolerance 0): any difference is a regression
        baseline.claims["figure5_guidance"].metrics["samples_varying_with_guidance"].aggregate = 2.0

    path = _planted(blessed, workdir, "planted_aggregate.json", plant)
    proc = idrift("compare", run_dir, "--baseline", path, "--format", "json", cwd=workdir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    failed = [(r["claim"], r["metric"]) for r in doc["rows"] if r["status"] == "FAIL"]
    assert failed == [("figure5_guidance", "samples_varying_with_guidance")]
    row = next(r for r in doc["rows"] if r["metric"] == "samples_varying_with_guidance")
    assert (row["baseline"], row["candidate"], row["difference"]) == (2.0, 0.0, -2.0)
    assert doc["failed"] is True and doc["run_provenance"]["profile"] == "tiny"
    no_traceback(proc)


def test_compare_flags_planted_sample_regression_in_markdown(workdir, run_dir, blessed):
    metric = "pixel_mean[schnell-4-g0]"

    def plant(baseline):  # every per-sample value 5 levels off (tolerance 0.5): the paired gate fails
        entry = baseline.claims["figure5_guidance"].metrics[metric]
        entry.samples = {k: v + 5.0 for k, v in entry.samples.items()}
        entry.aggregate += 5.0

    path = _planted(blessed, workdir, "planted_samples.json", plant)
    proc = idrift("compare", run_dir, "--baseline", path, "--format", "markdown", cwd=workdir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("## idrift compare: REGRESSION")
    row = next(line for line in proc.stdout.splitlines() if f"| {metric} |" in line)
    assert row.endswith("| **FAIL** |")
    assert "| -5 |" in row  # the difference column


def test_one_word_per_claim_in_run_compare_report_and_pytest(workdir, run_dir, first_run, manifest):
    """The same claim gets the same word from `idrift run`, `idrift compare` (text, markdown, json),
    `idrift report` and the pytest plugin; against the paper a tiny run exits 0, its identity and LPIPS
    rows NOT JUDGEABLE (they used to FAIL), and the gate's n is the run's."""
    words = {c: e["verdict"] for c, e in results(run_dir)["claims"].items()}
    assert words["figure5_guidance"] == words["table1_backbone_swap"] == "NOT JUDGEABLE"
    for claim_id, word in words.items():
        assert f"{word:13}  {claim_id}" in first_run.stdout

    proc = idrift("compare", run_dir, "--baseline", "paper", "--format", "json", cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["claims"] == words and doc["failed"] is False
    identity = [r for r in doc["rows"] if r["metric"].startswith(("id_sim", "lpips"))
                and r["status"] not in ("no baseline", "missing")]
    assert identity and {r["status"] for r in identity} == {"NOT JUDGEABLE"}
    delta = next(r for r in doc["rows"] if r["metric"] == "id_sim_delta")
    assert (delta["n"], delta["baseline_n"], delta["candidate_n"]) == (N_PROMPTS, 84, N_PROMPTS)
    assert delta["baseline_inside"] is False and delta["candidate_ci_low"] == 0.0
    for fmt in ("text", "markdown"):
        out = idrift("compare", run_dir, "--baseline", "paper", "--format", fmt, cwd=workdir).stdout
        for claim_id, word in words.items():
            assert f"{claim_id}: {word} (" in out, (fmt, claim_id)
        assert out.rstrip().splitlines()[-1].startswith("NOT JUDGEABLE:")  # nothing judged, nothing passed

    report_dir = workdir / "report-words"
    assert idrift("report", run_dir, "--out", report_dir, cwd=workdir).returncode == 0
    report = (report_dir / "report.md").read_text()
    for claim_id, word in words.items():
        assert re.search(rf"^\| {claim_id} \| [^|]+ \| {word} \(", report, re.M), claim_id
    assert "## The paper, number by number" in report
    assert "| table1_backbone_swap | id_sim_delta | 0.028 | 0 | [0, 0] | 3 | no | NOT JUDGEABLE |" in report

    env = _env(workdir)
    bench = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_guidance.py", "benchmarks/test_backbone_swap.py", "-q",
         "-p", "no:cacheprovider", "--idrift-store", str(run_dir / "store"), "--idrift-identities", str(manifest),
         "--idrift-baseline", "paper", "-k", "test_claim"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    for claim_id in ("figure5_guidance", "table1_backbone_swap", "table1_dev4_diagnostic"):
        if claim_id in words:
            assert f"{claim_id}: {words[claim_id]} (" in bench.stdout, claim_id


def test_bless_prints_the_diff_and_writes_nothing_unconfirmed(workdir, run_dir, blessed):
    def plant(baseline):
        baseline.claims["figure5_guidance"].metrics["samples_varying_with_guidance"].aggregate = 2.0

    path = _planted(blessed, workdir, "to_rebless.json", plant)
    before = path.read_bytes()
    proc = idrift("bless", run_dir, "--name", path, cwd=workdir)  # stdin is not a terminal, no --yes
    assert proc.returncode == 2
    assert "~ figure5_guidance / samples_varying_with_guidance: aggregate 2 -> 0" in proc.stdout
    assert "not written" in proc.stderr and "--yes" in proc.stderr
    assert path.read_bytes() == before
    no_traceback(proc)


# ------------------------------------------------------------------------------------------- usage


@pytest.mark.parametrize("args, message", [
    (["run", "--claims", "nope", "--out", "{tmp}/never"], "unknown claim 'nope'"),
    (["run", "--profile", "huge", "--out", "{tmp}/never"], "invalid choice: 'huge'"),
    (["compare", "{tmp}/no-such-run", "--baseline", "tiny-cpu"], "does not exist"),
    (["compare", "{run}", "--baseline", "tiny-cpu", "--format", "xml"], "invalid choice: 'xml'"),
    (["report", "{tmp}/no-such-run"], "does not exist"),
    (["report", "{tmp}"], "has no results.json"),
    (["bless", "{run}"], "--name"),
], ids=["unknown-claim", "unknown-profile", "missing-run-dir", "unknown-format", "report-missing-dir",
        "not-a-run-dir", "bless-without-name"])
def test_usage_errors(workdir, run_dir, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, run=run_dir) for a in args]
    proc = idrift(*args, cwd=workdir)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "error:" in proc.stderr
    no_traceback(proc)
    assert not (tmp_path / "never").exists()  # a bad argument creates nothing
