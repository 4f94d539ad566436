"""Stage timing: accumulation, warm-up exclusion, and the pytest-benchmark JSON it produces."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from idrift.metrics.latency import STAGES, StageTimer, measure, record_benchmark


class FakeClock:
    """A clock that moves only when told, so stage sums are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_stages_accumulate() -> None:
    clock = FakeClock()
    timer = StageTimer("cpu", clock=clock)
    for seconds in (0.25, 0.5):
        with timer.stage("backbone"):
            clock.advance(seconds)
    with timer.stage("text_encoding"):
        clock.advance(0.125)
    clock.advance(10.0)  # untimed code between stages is not charged to any stage

    assert timer.seconds == {"text_encoding": 0.125, "backbone": 0.75}  # pipeline order, not call order
    assert list(timer.seconds) == ["text_encoding", "backbone"]
    assert timer.counts == {"text_encoding": 1, "backbone": 2}
    assert timer.total == 0.875
    timer.reset()
    assert timer.seconds == {} and timer.total == 0.0


def test_a_failing_stage_is_still_timed() -> None:
    clock = FakeClock()
    timer = StageTimer("cpu", clock=clock)
    with pytest.raises(ZeroDivisionError), timer.stage("vae_decode"):
        clock.advance(2.0)
        raise ZeroDivisionError
    assert timer.seconds == {"vae_decode": 2.0}
    with timer.stage("vae_decode"):  # and the timer is usable afterwards
        clock.advance(1.0)
    assert timer.seconds == {"vae_decode": 3.0}


def test_real_clock_measures_sleep() -> None:
    import time

    timer = StageTimer()
    with timer.stage("lpips"):
        time.sleep(0.02)
    assert timer.seconds["lpips"] >= 0.02


def test_bad_stage_use_is_refused() -> None:
    timer = StageTimer("cpu")
    unknown = "unknown stage 'backbon'; expected one of text_encoding, .*, lpips"
    with pytest.raises(ValueError, match=unknown), timer.stage("backbon"):
        pass
    nesting = "stage 'infusenet' started inside stage 'backbone'; stages must not nest"
    with pytest.raises(RuntimeError, match=nesting), timer.stage("backbone"), timer.stage("infusenet"):
        pass
    assert set(StageTimer("cpu", stages=("a", "b")).stages) == {"a", "b"}
    assert STAGES == ("text_encoding", "id_embedding", "control_image", "infusenet", "backbone", "vae_decode",
                      "face_metric", "lpips")


def test_memory_on_cpu() -> None:
    timer = StageTimer("cpu")
    assert timer.gpu_peak_bytes is None
    assert timer.memory()["rss_peak_bytes"] > 10 * 2**20  # this process holds torch: well over 10 MiB


def test_measure_excludes_warmup() -> None:
    clock = FakeClock()
    calls = []

    def run(timer: StageTimer) -> None:
        first = not calls
        calls.append(1)
        with timer.stage("backbone"):
            clock.advance(5.0 if first else 1.0)  # the warm-up call is slow (allocations, autotuning)
        with timer.stage("vae_decode"):
            clock.advance(0.5)
        if len(calls) == 3:
            with timer.stage("face_metric"):  # a stage missing from some rounds counts 0 there
                clock.advance(3.0)

    m = measure(run, warmup=1, rounds=3, clock=clock)
    assert len(calls) == 4
    assert m.totals == [1.5, 4.5, 1.5]
    assert m.median == 1.5
    assert m.stage_medians == {"backbone": 1.0, "vae_decode": 0.5, "face_metric": 0.0}
    assert m.stages[1] == {"backbone": 1.0, "vae_decode": 0.5, "face_metric": 3.0}
    assert m.gpu_peak_bytes is None and m.device == "cpu"
    assert json.loads(json.dumps(m.as_dict()))["stage_medians_s"]["backbone"] == 1.0


def test_measure_rejects_bad_counts_and_open_stages() -> None:
    with pytest.raises(ValueError, match="rounds must be an int >= 1, got 0"):
        measure(lambda t: None, rounds=0)
    with pytest.raises(ValueError, match="warmup must be an int >= 0, got -1"):
        measure(lambda t: None, warmup=-1)
    left_open = []

    def forgets_to_close(timer: StageTimer) -> None:
        left_open.append(timer.stage("backbone"))
        left_open[-1].__enter__()

    with pytest.raises(RuntimeError, match="stage 'backbone' was entered but never left"):
        measure(forgets_to_close, warmup=0, rounds=1)


def test_record_benchmark_checks_extra_info() -> None:
    class NoBenchmark:  # never reached: the arguments are checked first
        def pedantic(self, *a, **k):
            raise AssertionError("pedantic must not run with bad arguments")

    with pytest.raises(ValueError, match="extra_info must be JSON-serialisable"):
        record_benchmark(NoBenchmark(), lambda t: None, rounds=1, warmup_rounds=0, extra_info={"x": object()})
    with pytest.raises(ValueError, match=r"extra_info keys \['device'\] are written by the timer"):
        record_benchmark(NoBenchmark(), lambda t: None, rounds=1, warmup_rounds=0, extra_info={"device": "h100"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the CPU path is tested above)")
def test_cuda_peak_memory_and_sync() -> None:
    held = torch.cuda.memory_allocated()  # what earlier tests of this process keep on the GPU counts in any peak
    timer = StageTimer("cuda")
    with timer.stage("backbone"):
        x = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda")  # 64 MiB
        y = x.float()  # 256 MiB, asynchronously
    assert timer.gpu_peak_bytes - held >= 320 * 2**20
    del x, y
    timer.reset()
    assert timer.gpu_peak_bytes - held < 320 * 2**20


BENCH_FILE = textwrap.dedent(
    """
    import os, time
    from idrift.metrics.latency import record_benchmark

    def test_pipeline(benchmark):
        pause = float(os.environ["IDRIFT_TEST_PAUSE"])
        def run(timer):
            with timer.stage("text_encoding"):
                time.sleep(pause / 4)
            with timer.stage("backbone"):
                time.sleep(pause)
            return "image"
        result, _ = record_benchmark(
            benchmark, run, rounds=3, warmup_rounds=1, extra_info={"provenance": {"profile": "tiny"}}
        )
        assert result == "image"
    """
)


def test_benchmark_json_compare_and_fail(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_bench=BENCH_FILE)
    # Under pytest-xdist this variable is set, and pytest-benchmark would disable itself in the inner run.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    storage = f"--benchmark-storage=file://{pytester.path / 'bench'}"

    monkeypatch.setenv("IDRIFT_TEST_PAUSE", "0.002")
    result = pytester.runpytest("-p", "no:cacheprovider", "--benchmark-json=out.json", "--benchmark-autosave", storage)
    result.assert_outcomes(passed=1)
    (bench,) = json.loads(Path(pytester.path / "out.json").read_text())["benchmarks"]
    assert bench["stats"]["rounds"] == 3  # warm-up rounds are not in the statistics
    info = bench["extra_info"]
    assert set(info["stage_medians_s"]) == {"text_encoding", "backbone"}
    assert info["stage_medians_s"]["backbone"] >= 0.002
    assert info["provenance"] == {"profile": "tiny"}
    assert (info["rounds"], info["warmup_rounds"], info["device"], info["gpu_peak_bytes"]) == (3, 1, "cpu", None)
    assert info["rss_peak_bytes"] > 0

    # Same speed against the saved run: the comparison passes.
    result = pytester.runpytest("-p", "no:cacheprovider", storage, "--benchmark-compare",
                                "--benchmark-compare-fail=min:500%")
    result.assert_outcomes(passed=1)
    assert result.ret == 0

    # 25x slower (sleep never returns early, so the minimum cannot hide it): the gate fails the session.
    monkeypatch.setenv("IDRIFT_TEST_PAUSE", "0.05")
    result = pytester.runpytest("-p", "no:cacheprovider", storage, "--benchmark-compare",
                                "--benchmark-compare-fail=min:500%")
    assert result.ret != 0
    assert "Performance has regressed" in result.stdout.str() + result.stderr.str()
