"""Timing an arm: the one latency timer's entry, shared by the pytest plugin and `idrift run`.

An arm's rounds (idrift.metrics.latency.time_rounds) are stored with the arm's sample as the metric
`latency`, which evaluate reads like any other. A spec is timed once per session: the latency claim and
the fast_paths claim share their eager arms, and a second timing would replace the rounds the first
claim was judged on. A path other than eager also records its first call (compile and capture
included) and, as the metric `reference_diff`, its image against the eager image of the same spec.

`TimingMixin` is part of `idrift.session.benchmark.BenchmarkSession`; it reads the session's `options`,
`device`, `store`, `runner`, `provenance`, `specs` and `pipeline_for`.
"""

from __future__ import annotations

import time

import numpy as np

from idrift.accel.plan import AccelerationPlan
from idrift.config import EAGER
from idrift.errors import IdriftError

REFERENCE_DIFF_METRIC = "reference_diff"  # a path's image against the eager image of the same spec
REFERENCE_DIFF_VERSION = "pixels-v1"


def pixel_difference(image, reference) -> dict:
    """Mean and largest absolute 8-bit difference between two images of the same size."""
    a, b = np.asarray(image, dtype=np.int16), np.asarray(reference, dtype=np.int16)
    d = np.abs(a - b)
    return {"pixel_mean": float(d.mean()), "pixel_max": float(d.max())}


class TimingMixin:
    timed: dict[str, dict]  # spec key -> the values time_arm stored for it in this session
    latency: dict[str, dict]  # arm name -> the same values (a copy for results.json)

    def timed_spec(self, arm):
        """The sample of `arm` its timing is stored with: the first sample of the timed claim (one that
        measures `latency`: latency, fast_paths) holding the arm."""
        from idrift.claims import CLAIMS
        from idrift.evaluate import arm_of

        for claim in CLAIMS:
            if arm in claim.arms and "latency" in claim.metrics:
                for spec in self.specs(claim):
                    if arm_of(spec.as_dict(), (arm,)) is not None:
                        return spec
        raise IdriftError(f"arm {arm.name} is not an arm of a timed claim (latency, fast_paths); time one of theirs")

    def is_timed(self, arm) -> bool:
        """Whether `arm`'s sample was timed earlier in this session (time_arm would return those values)."""
        return self.timed_spec(arm).key in self.timed

    def latency_rounds(self) -> tuple[int, int]:
        """(warm-up rounds, rounds) of each timed arm: the options', else the device's defaults."""
        from idrift.metrics.latency import default_rounds

        return default_rounds(self.device, self.options.warmup_rounds, self.options.rounds)

    def time_arm(self, arm, benchmark=None) -> dict:
        """Latency of one arm end to end on its numerical path (text, identity and control encodings
        included: caches are cleared every round), timed by idrift.metrics.latency.time_rounds (through
        pytest-benchmark when `benchmark` is its fixture) and stored with the arm's sample as the metric
        `latency`, which evaluate reads like any other. A path other than eager also records its first
        call (compile and capture included) and, as the metric `reference_diff`, its image against the
        eager image of the same spec. The sample is generated first when the store lacks it.

        A spec timed earlier in this session is not timed again: its stored values are returned (under pytest,
        idrift.pytest_plugin.benchmark_arm skips that arm's test, saying so)."""
        from idrift.metrics.latency import LATENCY_METRIC, LATENCY_VERSION, time_rounds

        spec = self.timed_spec(arm)
        if spec.key in self.timed:
            self.latency[arm.name] = self.timed[spec.key]
            return self.timed[spec.key]
        reference = self.runner.reference(spec.identity)
        pipe = self.pipeline_for(spec.acceleration)

        def generate(timer):
            pipe.clear_caches()
            return pipe(spec, reference, timer=timer)

        # The path's first call of this spec, before anything else runs it: compilation and capture included.
        first_s = timed_once(generate, self.device) if spec.acceleration != EAGER else None
        [record] = self.runner.ensure([spec], ("pixels",), progress=False)  # the sample the timing belongs to
        if record["status"] != "ok":
            raise IdriftError(f"latency of {arm.name}: its sample {spec.key} failed ({record['error']}); "
                              "nothing to time")
        warmup_rounds, rounds = self.latency_rounds()
        extra = {"idrift_arm": arm.name, "idrift_spec": spec.as_dict(), "idrift_provenance": self.provenance}
        values = time_rounds(generate, device=self.device, rounds=rounds, warmup_rounds=warmup_rounds,
                             benchmark=benchmark, extra_info=extra)
        values.update(self.path_timing(spec, pipe, values["seconds"], first_s))
        self.store.put_metrics(spec.key, LATENCY_METRIC, LATENCY_VERSION, values)
        self.measure_reference_diff(spec)
        self.timed[spec.key] = self.latency[arm.name] = values
        return values

    # ---- what a timed path adds to its sample -----------------------------------------------------
    def path_timing(self, spec, pipe, seconds: list, first_s: float | None) -> dict:
        """The path's part of a timed sample's `latency`: the plan's provenance and, where the path
        compiles (not eager, on a GPU), the first call and its compile seconds over the steady median."""
        out = {"acceleration": AccelerationPlan.from_label(spec.acceleration).provenance(pipe)}
        if first_s is not None:
            out["first_call_s"] = first_s
            if self.device.startswith("cuda") and seconds:
                out["compile_s"] = first_s - float(np.median(seconds))
        return out

    def measure_reference_diff(self, spec) -> None:
        """Store `reference_diff` for a sample of a path other than eager: its image against the stored
        eager image of the same spec (made first: FAST_PATHS runs eager first). Nothing when there is none."""
        if spec.acceleration == EAGER:
            return
        store = self.store
        if not store.needs_metric(spec.key, REFERENCE_DIFF_METRIC, REFERENCE_DIFF_VERSION):
            return
        mine, eager = store.get(spec), store.get(spec.replace(acceleration=EAGER))
        if mine is None or eager is None or not (mine.ok and eager.ok):
            return
        store.put_metrics(spec.key, REFERENCE_DIFF_METRIC, REFERENCE_DIFF_VERSION,
                          pixel_difference(mine.load_image(), eager.load_image()))


def timed_once(fn, device: str) -> float:
    """Seconds of one call of `fn(None)`, CUDA synchronised (a path's first call: compile included)."""
    cuda = device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.synchronize()
    start = time.perf_counter()
    fn(None)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start
