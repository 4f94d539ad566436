"""Latency: wall-clock seconds per pipeline stage, with CUDA synchronisation and peak memory.

A `StageTimer` accumulates seconds per named stage. On CUDA it calls `torch.cuda.synchronize()`
before each clock read, because kernels run asynchronously: without it a stage would be charged
only for launching its kernels and the next stage for finishing them.

`measure(fn)` runs `fn(timer)` a few times and reports per-round totals and per-stage medians with
the warm-up rounds left out (the first call pays for allocator growth, cuDNN autotuning, lazy
imports). `record_benchmark(benchmark, fn, ...)` does the same through pytest-benchmark, so that its
`--benchmark-json`, `--benchmark-compare` and `--benchmark-compare-fail` see the round times and the
JSON carries the stage breakdown in `extra_info`.

Example:
    >>> import time
    >>> timer = StageTimer("cpu")
    >>> with timer.stage("text_encoding"):
    ...     time.sleep(0.01)
    >>> with timer.stage("text_encoding"):
    ...     time.sleep(0.01)
    >>> timer.seconds["text_encoding"] >= 0.02
    True
    >>> timer.counts["text_encoding"]
    2
    >>> def run(timer):
    ...     with timer.stage("backbone"):
    ...         time.sleep(0.001)
    >>> m = measure(run, warmup=1, rounds=3)
    >>> len(m.totals), list(m.stage_medians)
    (3, ['backbone'])
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

# The stages the pipeline reports, in pipeline order. A typo in a stage name would silently split
# a stage in two, so names are checked against this list unless a timer is given its own.
STAGES: tuple[str, ...] = (
    "text_encoding",
    "id_embedding",
    "control_image",
    "infusenet",
    "backbone",
    "vae_decode",
    "face_metric",
    "lpips",
)


# Keys record_benchmark writes into benchmark.extra_info.
TIMING_KEYS: tuple[str, ...] = ("stage_medians_s", "gpu_peak_bytes", "rss_peak_bytes", "device", "rounds",
                                "warmup_rounds")


def _rss_peak_bytes() -> int:
    """Peak resident set size of this process since it started (the kernel cannot reset it)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(peak if sys.platform == "darwin" else peak * 1024)


class StageTimer:
    """Accumulates wall-clock seconds per pipeline stage.

    Args:
        device: where the timed work runs ("cpu", "cuda", "cuda:1", a `torch.device`, or None for
            the CPU). On CUDA the timer synchronises that device before every clock read and tracks
            its peak allocated memory.
        stages: the allowed stage names (default `STAGES`).
        clock: seconds as a float (default `time.perf_counter`; tests pass a fake one).

    Stages must not nest (the total would count the inner stage twice): time them one after another.
    `seconds` and `counts` are copies; `reset()` clears them and restarts the peak-memory window.
    """

    def __init__(
        self,
        device: str | torch.device | None = None,
        stages: tuple[str, ...] = STAGES,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.device = torch.device(device if device is not None else "cpu")
        self.is_cuda = self.device.type == "cuda"
        if self.is_cuda and not torch.cuda.is_available():
            raise RuntimeError(f"StageTimer(device={str(self.device)!r}): CUDA is not available in this process; "
                               "pass 'cpu'")
        self.stages = tuple(stages)
        self.clock = clock
        self._seconds: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._open: str | None = None
        self.reset()

    def synchronize(self) -> None:
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    def reset(self) -> None:
        """Forget all stage times and restart the peak-memory window (GPU only; RSS peak cannot reset)."""
        if self._open is not None:
            raise RuntimeError(f"cannot reset the timer inside stage {self._open!r}")
        self._seconds = {}
        self._counts = {}
        if self.is_cuda:
            self.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body of a `with` block and add it to `name`."""
        if name not in self.stages:
            raise ValueError(f"unknown stage {name!r}; expected one of {', '.join(self.stages)}")
        if self._open is not None:
            raise RuntimeError(
                f"stage {name!r} started inside stage {self._open!r}; stages must not nest "
                "(the total would count the inner one twice): time them one after another"
            )
        self._open = name
        self.synchronize()
        start = self.clock()
        try:
            yield
        finally:
            self.synchronize()
            elapsed = self.clock() - start
            self._open = None
            self._seconds[name] = self._seconds.get(name, 0.0) + elapsed
            self._counts[name] = self._counts.get(name, 0) + 1

    def check_closed(self) -> None:
        if self._open is not None:
            name = self._open
            self._open = None
            raise RuntimeError(f'stage {name!r} was entered but never left; use `with timer.stage("{name}"): ...`')

    @property
    def seconds(self) -> dict[str, float]:
        """Accumulated seconds per stage, in `stages` order."""
        return {s: self._seconds[s] for s in self.stages if s in self._seconds}

    @property
    def counts(self) -> dict[str, int]:
        """How many times each stage was entered."""
        return {s: self._counts[s] for s in self.stages if s in self._counts}

    @property
    def total(self) -> float:
        """Sum over stages (untimed code between stages is not included)."""
        return float(sum(self._seconds.values()))

    @property
    def gpu_peak_bytes(self) -> int | None:
        """Peak allocated GPU memory since the last `reset()`; None on the CPU."""
        if not self.is_cuda:
            return None
        return int(torch.cuda.max_memory_allocated(self.device))

    @property
    def rss_peak_bytes(self) -> int:
        return _rss_peak_bytes()

    def memory(self) -> dict[str, int | None]:
        return {"gpu_peak_bytes": self.gpu_peak_bytes, "rss_peak_bytes": self.rss_peak_bytes}


@dataclass(frozen=True)
class Measurement:
    """What `measure` returns. Warm-up rounds are not in any field."""

    totals: list[float]  # wall seconds of each measured call of fn, including untimed code
    stages: list[dict[str, float]]  # per measured round, seconds per stage
    stage_medians: dict[str, float]  # median over measured rounds (a stage absent from a round counts 0)
    gpu_peak_bytes: int | None  # max over measured rounds; None on the CPU
    rss_peak_bytes: int
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return float(statistics.median(self.totals))

    def as_dict(self) -> dict[str, Any]:
        return {
            "totals_s": list(self.totals),
            "median_s": self.median,
            "stage_medians_s": dict(self.stage_medians),
            "gpu_peak_bytes": self.gpu_peak_bytes,
            "rss_peak_bytes": self.rss_peak_bytes,
            "device": self.device,
        }


def _stage_medians(rounds: list[dict[str, float]], order: tuple[str, ...]) -> dict[str, float]:
    names = [s for s in order if any(s in r for r in rounds)]
    return {s: float(statistics.median(r.get(s, 0.0) for r in rounds)) for s in names}


class _Recorder:
    """Calls fn(timer) once per round and keeps each round's wall time, stages and peak memory."""

    def __init__(self, fn: Callable[[StageTimer], Any], timer: StageTimer) -> None:
        self.fn = fn
        self.timer = timer
        self.totals: list[float] = []
        self.stages: list[dict[str, float]] = []
        self.peaks: list[int | None] = []

    def __call__(self) -> Any:
        timer = self.timer
        timer.reset()  # synchronises, so earlier GPU work is not charged to this round
        start = timer.clock()
        try:
            result = self.fn(timer)
        finally:
            timer.synchronize()
        self.totals.append(timer.clock() - start)
        timer.check_closed()
        self.stages.append(timer.seconds)
        self.peaks.append(timer.gpu_peak_bytes)
        return result

    def measurement(self, rounds: int) -> Measurement:
        # The last `rounds` calls are the measured ones; earlier calls were warm-up.
        keep = slice(max(0, len(self.totals) - rounds), None)
        stages = self.stages[keep]
        peaks = [p for p in self.peaks[keep] if p is not None]
        return Measurement(
            totals=self.totals[keep],
            stages=stages,
            stage_medians=_stage_medians(stages, self.timer.stages),
            gpu_peak_bytes=max(peaks) if peaks else None,
            rss_peak_bytes=_rss_peak_bytes(),
            device=str(self.timer.device),
        )


def _check_counts(warmup: int, rounds: int, where: str) -> None:
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise ValueError(f"{where}: rounds must be an int >= 1, got {rounds!r}")
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise ValueError(f"{where}: warmup must be an int >= 0, got {warmup!r}")


def measure(
    fn: Callable[[StageTimer], Any],
    warmup: int = 1,
    rounds: int = 3,
    device: str | torch.device | None = None,
    stages: tuple[str, ...] = STAGES,
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Run `fn(timer)` `warmup + rounds` times; report the last `rounds` only.

    `fn` receives a fresh-reset `StageTimer` each round and wraps its stages in `timer.stage(...)`.
    """
    _check_counts(warmup, rounds, "measure")
    recorder = _Recorder(fn, StageTimer(device, stages=stages, clock=clock))
    for _ in range(warmup + rounds):
        recorder()
    return recorder.measurement(rounds)


def _check_json(extra_info: dict, where: str) -> None:
    if not isinstance(extra_info, dict):
        raise TypeError(f"{where}: extra_info must be a dict of JSON values, got {type(extra_info).__name__}")
    try:
        json.dumps(extra_info, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{where}: extra_info must be JSON-serialisable (pytest-benchmark writes it to --benchmark-json): {exc}"
        ) from exc


def record_benchmark(
    benchmark: Any,
    fn: Callable[[StageTimer], Any],
    *,
    rounds: int,
    warmup_rounds: int,
    extra_info: dict,
    device: str | torch.device | None = None,
    stages: tuple[str, ...] = STAGES,
) -> tuple[Any, Measurement]:
    """Time `fn(timer)` with pytest-benchmark's `benchmark` fixture and attach the stage breakdown.

    Calls `benchmark.pedantic(..., rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)`, so
    pytest-benchmark's statistics, JSON and comparisons cover exactly the measured rounds. Then
    `benchmark.extra_info` gets `stage_medians_s`, `gpu_peak_bytes`, `rss_peak_bytes`, `device`,
    `rounds`, `warmup_rounds` and everything in `extra_info` (e.g. provenance). Returns (fn's result,
    the measured rounds as a Measurement).

    With `--benchmark-disable` pytest-benchmark calls fn once; the stages of that call are recorded.
    """
    _check_counts(warmup_rounds, rounds, "record_benchmark")
    _check_json(extra_info, "record_benchmark")
    clash = sorted(set(extra_info) & set(TIMING_KEYS))
    if clash:
        raise ValueError(f"record_benchmark: extra_info keys {clash} are written by the timer itself; rename them")
    recorder = _Recorder(fn, StageTimer(device, stages=stages))
    result = benchmark.pedantic(recorder, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
    m = recorder.measurement(rounds)
    timing = {
        "stage_medians_s": m.stage_medians,
        "gpu_peak_bytes": m.gpu_peak_bytes,
        "rss_peak_bytes": m.rss_peak_bytes,
        "device": m.device,
        "rounds": rounds,
        "warmup_rounds": warmup_rounds,
    }
    benchmark.extra_info.update(timing)
    benchmark.extra_info.update(extra_info)
    return result, m


# ---- latency as a stored metric ---------------------------------------------------------------

# The store's name and version of an arm's timing (store.put_metrics(spec_key, LATENCY_METRIC, ...)).
# The version changes when what a round covers changes, so that old timings are not mixed with new ones.
LATENCY_METRIC = "latency"
LATENCY_VERSION = "rounds-v1"

# Warm-up and timed rounds per device type. On CUDA, once warm, the rounds of a diffusion pipeline vary
# little: the median of ten keeps an identical rerun inside `--benchmark-compare-fail=median:10%`. On the CPU
# (tiny models, CI) two keep the first `pytest benchmarks` short: CPU timings of tiny models are not judged,
# and README.md states how far an identical rerun's medians move there.
DEFAULT_ROUNDS = {"cuda": (2, 10), "cpu": (1, 2)}  # device type -> (warm-up rounds, rounds)


def default_rounds(device: str | torch.device | None, warmup_rounds: int | None = None,
                   rounds: int | None = None) -> tuple[int, int]:
    """(warm-up rounds, rounds) for `device`: the given ones, else DEFAULT_ROUNDS of its device type."""
    kind = torch.device(device if device is not None else "cpu").type
    warm, measured = DEFAULT_ROUNDS.get(kind, DEFAULT_ROUNDS["cpu"])
    out = (warm if warmup_rounds is None else warmup_rounds, measured if rounds is None else rounds)
    _check_counts(out[0], out[1], "default_rounds")
    return out


def latency_values(m: Measurement, warmup_rounds: int) -> dict[str, Any]:
    """What the store keeps of an arm's timing: every measured round's seconds and stages, the stage
    medians, peak memory, the device and the round counts (JSON values only)."""
    return {
        "seconds": [float(t) for t in m.totals],
        "stages": dict(m.stage_medians),
        "stage_rounds": [dict(r) for r in m.stages],
        "gpu_peak_bytes": m.gpu_peak_bytes,
        "rss_peak_bytes": m.rss_peak_bytes,
        "device": m.device,
        "rounds": len(m.totals),
        "warmup_rounds": warmup_rounds,
    }


def time_rounds(
    fn: Callable[[StageTimer], Any],
    *,
    device: str | torch.device | None = None,
    rounds: int | None = None,
    warmup_rounds: int | None = None,
    benchmark: Any = None,
    extra_info: dict | None = None,
    stages: tuple[str, ...] = STAGES,
) -> dict[str, Any]:
    """Time `fn(timer)`: `warmup_rounds` then `rounds` calls (None: `default_rounds` of the device).

    The one latency timer of idrift: with pytest-benchmark's `benchmark` fixture the rounds run through
    it (`record_benchmark`: its statistics, JSON and `--benchmark-compare` see them, `extra_info` is
    attached), else through `measure`. Returns `latency_values` of the measured rounds, which the
    session stores with the arm's sample as the metric LATENCY_METRIC.
    """
    warmup_rounds, rounds = default_rounds(device, warmup_rounds, rounds)
    if benchmark is None:
        m = measure(fn, warmup=warmup_rounds, rounds=rounds, device=device, stages=stages)
    else:
        _, m = record_benchmark(benchmark, fn, rounds=rounds, warmup_rounds=warmup_rounds,
                                extra_info=extra_info or {}, device=device, stages=stages)
    return latency_values(m, warmup_rounds)
