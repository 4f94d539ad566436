"""The fast_paths claim: its summary from stored samples, its verdicts on a CPU, and the session's one
pipeline per acceleration label (idrift.session.paths, idrift.evaluate.summaries.fast_paths) and its timing
(idrift.session.timing)."""

import pytest

from idrift import verdicts
from idrift.claims import CLAIMS_BY_ID
from idrift.evaluate import check_expectations, evaluate

CLAIM = CLAIMS_BY_ID["fast_paths"]


def record(arm, seconds, **extra):
    spec = {**arm.spec_fields(), "identity": "id0", "prompt_id": "portrait", "seed": 0}
    return {"spec": spec, "status": "ok", "metrics": {"latency": {"seconds": seconds, **extra}}}


def test_summary_reports_every_path_against_eager_and_stock_compile():
    by_name = {arm.name: arm for arm in CLAIM.arms}
    records = [record(by_name["schnell-4"], [1.0, 1.1, 0.9]),
               record(by_name["schnell-4@stock-compile"], [0.8, 0.8, 0.9], compile_s=30.0),
               record(by_name["schnell-4@lossless"], [0.5, 0.5, 0.6], compile_s=40.0, gpu_peak_bytes=6.5e10)]
    records[2]["metrics"]["reference_diff"] = {"pixel_mean": 0.7, "pixel_max": 9.0}
    result = evaluate(CLAIM, records)
    assert result.figures["latency_s[schnell-4@lossless]"] == 0.5
    assert result.figures["speedup_vs_eager[schnell-4@lossless]"] == pytest.approx(1.0 / 0.5)
    assert result.figures["speedup_vs_stock[schnell-4@lossless]"] == pytest.approx(0.8 / 0.5)
    assert result.figures["compile_s[schnell-4@lossless]"] == 40.0
    assert result.figures["gpu_peak_gb[schnell-4@lossless]"] == pytest.approx(65.0)
    assert result.figures["reference_diff_max[schnell-4@lossless]"] == 9.0
    assert "speedup_vs_eager[schnell-4]" not in result.figures  # eager is the reference, not a path against it
    assert result.intervals["latency_s[schnell-4@lossless]"].ci is not None  # over the timed rounds
    # a sample of another path is not this arm's: only the exact acceleration label matches
    assert "latency_s[dev-28@lossless]" not in result.figures

    outcomes = {o.expect.metric: o for o in check_expectations(result, "synthetic", {})}
    assert outcomes["speedup_vs_stock[schnell-4@lossless]"].status == verdicts.PASS
    assert outcomes["latency_s[dev-28@lossless]"].status == verdicts.FAIL  # not measured
    tiny = check_expectations(result, "tiny", {})
    assert {o.status for o in tiny} == {verdicts.NOT_JUDGEABLE}
    assert all("synthetic and real" in o.reason for o in tiny)


def test_claim_arms_run_eager_first_and_fp8_last():
    paths = [arm.acceleration for arm in CLAIM.arms]
    assert paths[:2] == ["eager", "eager"] and paths.index("stock-compile") < paths.index("lossless")
    assert all(p.startswith("lossy:fp8") for p in paths[paths.index("lossy:fp8"):])


def test_session_builds_one_pipeline_per_label(tmp_path):
    from idrift.errors import IdriftError
    from idrift.session import BenchmarkSession, SessionOptions

    s = BenchmarkSession(SessionOptions(profile="tiny", cache_dir=str(tmp_path), store=str(tmp_path / "store")))
    eager = s.pipeline_for("eager")
    assert s.pipeline is eager and eager.plan.label == "eager"
    lossless = s.pipeline_for("lossless")
    assert lossless is not eager and lossless.hooks.step_modulation is not None
    assert lossless.acceleration["mode"] == "lossless"
    again = s.pipeline_for("eager")  # the lossless plan is undone on the same bundle
    assert lossless.hooks.step_modulation is None and again.bundle is lossless.bundle
    assert s.plan_reason("stock-compile").startswith("stock-compile: needs a CUDA GPU")
    with pytest.raises(IdriftError, match="lossy:fp8: needs a CUDA GPU"):
        s.pipeline_for("lossy:fp8")
    cached = s.pipeline_for("lossy:fbc0.12")
    assert cached.hooks.step_cache is not None and cached.acceleration["lossy"] is True


def test_stock_compile_marks_the_repeated_blocks_and_undoes_them():
    """diffusers' compile_repeated_blocks only wraps the blocks (torch.compile is lazy): cheap on a CPU."""
    from idrift.accel.fast import repeated_blocks
    from idrift.accel.plan import AccelerationPlan
    from idrift.models.tiny import build_tiny_bundle
    from idrift.pipeline.infinite_you import InfiniteYouPipeline

    pipe = InfiniteYouPipeline(build_tiny_bundle())
    plan = AccelerationPlan("stock-compile")
    reports = plan.apply(pipe)
    blocks = [b for m in (*pipe.bundle._backbones.values(), pipe.bundle.infusenet) for b in repeated_blocks(m)]
    assert reports["stock_compile"]["compiled_blocks"] == len(blocks) > 0
    assert all(b._compiled_call_impl is not None for b in blocks)
    assert plan.provenance(pipe)["stock_compile"]["how"].startswith("diffusers ModelMixin.compile_repeated_blocks")
    plan.undo(pipe)
    assert all(b._compiled_call_impl is None for b in blocks) and pipe.plan.label == "eager"
    assert not pipe.bundle.backbone_prepare


def test_speedup_rounds_pair_each_path_with_its_reference():
    from idrift.evaluate import ClaimResult
    from idrift.evaluate.summaries.fast_paths import speedup_rounds

    result = ClaimResult(CLAIM, timings={"schnell-4": [1.0, 1.1], "schnell-4@stock-compile": [0.8, 0.9],
                                         "schnell-4@lossless": [0.5, 0.6]})
    assert speedup_rounds(result, "speedup_vs_eager[schnell-4@lossless]") == ([1.0, 1.1], [0.5, 0.6])
    assert speedup_rounds(result, "speedup_vs_stock[schnell-4@lossless]") == ([0.8, 0.9], [0.5, 0.6])
    assert speedup_rounds(result, "speedup_vs_eager[dev-28@lossless]") is None  # not timed
    assert speedup_rounds(result, "latency_s[schnell-4@lossless]") is None
    assert speedup_rounds(result, "speedup") is None  # the latency claim's: dev-28 and schnell-4 of one claim


def test_a_spec_is_timed_once_per_session(tmp_path):
    """latency and fast_paths share their eager arms: the second claim gets the first timing, so that the
    stored rounds stay those the first claim was judged on."""
    from idrift.metrics.latency import LATENCY_METRIC
    from idrift.session import BenchmarkSession, SessionOptions

    s = BenchmarkSession(SessionOptions(profile="tiny", cache_dir=str(tmp_path), store=str(tmp_path / "store"),
                                        rounds=1, warmup_rounds=0))
    [latency_arm] = [a for a in CLAIMS_BY_ID["latency"].arms if a.name == "schnell-4"]
    [fast_arm] = [a for a in CLAIM.arms if a.name == "schnell-4"]
    first = s.time_arm(latency_arm)
    second = s.time_arm(fast_arm)
    assert second is first and s.latency["schnell-4"] is first
    stored = s.store.get(s.timed_spec(fast_arm)).metrics[LATENCY_METRIC]["values"]
    assert stored["seconds"] == first["seconds"]


def test_a_path_first_call_is_timed_before_its_sample_is_made(tmp_path, monkeypatch):
    """first_call_s (and, on CUDA, compile_s) is the path's first call: timed before the sample of the
    spec is generated, else compilation has already happened and the figure is a steady call."""
    import idrift.session.timing as timing
    from idrift.session import BenchmarkSession, SessionOptions

    s = BenchmarkSession(SessionOptions(profile="tiny", cache_dir=str(tmp_path), store=str(tmp_path / "store"),
                                        rounds=1, warmup_rounds=0))
    [arm] = [a for a in CLAIM.arms if a.name == "schnell-4@lossless"]
    spec = s.timed_spec(arm)
    seen = []

    def first_call(fn, device):  # the real timer, noting whether the store held the sample already
        seen.append(s.store.get(spec) is not None)
        return real(fn, device)

    real = timing.timed_once
    monkeypatch.setattr(timing, "timed_once", first_call)
    values = s.time_arm(arm)
    assert seen == [False] and values["first_call_s"] > 0
    assert "compile_s" not in values  # a CPU's first call says nothing of a GPU's compile time
    assert s.store.get(spec).ok


def test_a_claim_lists_only_the_samples_it_evaluated(tmp_path):
    """The paths this device cannot take are not run, so their samples are not among the claim's spec keys
    (results.json's `spec_keys`): a report re-evaluates the claim from the store instead of falling back."""
    from idrift.session import BenchmarkSession, SessionOptions

    s = BenchmarkSession(SessionOptions(profile="tiny", cache_dir=str(tmp_path), store=str(tmp_path / "store")))
    s.run_claim(CLAIM)
    keys, every = s.spec_keys[CLAIM.id], s.specs(CLAIM)
    cannot = {spec.key for spec in every if s.plan_reason(spec.acceleration) is not None}
    assert cannot and not cannot & set(keys)  # stock-compile and fp8 need CUDA
    assert len(keys) == len(every) - len(cannot)
    assert all(s.store.get(key) is not None for key in keys)


def test_pytest_times_a_shared_arm_once_and_says_so(tmp_path):
    """`pytest benchmarks` runs test_latency.py before test_speed.py: the eager arm both claims share is timed
    by the first, and the second's test is skipped with the reason (pytest-benchmark then reports it once and
    does not warn about an unused fixture)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from idrift.pytest_plugin import SHARED_ARM_SKIP

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, IDRIFT_CACHE=str(tmp_path / "cache"), IDRIFT_ROUNDS="1", IDRIFT_WARMUP_ROUNDS="0")
    env.pop("PYTEST_XDIST_WORKER", None)  # an outer xdist run: the inner one would skip both timed tests
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_latency.py::test_latency[schnell-4]",
         "benchmarks/test_speed.py::test_fast_path[schnell-4]", "-q", "-rs", "-p", "no:cacheprovider",
         "--idrift-store", str(tmp_path / "store")], cwd=repo, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "1 passed, 1 skipped" in out and SHARED_ARM_SKIP in " ".join(out.split()), out[-3000:]
    assert "Benchmark fixture was not used" not in out
