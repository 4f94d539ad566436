"""The numerical paths of a benchmark session: one pipeline per acceleration label, built when needed.

A claim's arm names its path (`Arm.acceleration`, an idrift.accel.plan label); the session-wide options
(`--idrift-accelerate`, `--idrift-memory`, `--idrift-step-cache`) name the path of every arm that does
not. `pipeline_for(label)` keeps one pipeline at a time: asking for another label undoes the current
plan (or, when it cannot be undone, as fp8's replaced weights, releases the bundle so that a fresh one
is built) and applies the new one. Runs therefore order their arms so that each bundle is reused as long
as it can be (idrift.claims.FAST_PATHS).

`PathsMixin` is part of `idrift.session.benchmark.BenchmarkSession`; it reads the session's `options`, `device`,
`bundle` and `profile`.
"""

from __future__ import annotations

import gc

from idrift.accel.plan import AccelerationPlan
from idrift.config import EAGER
from idrift.errors import IdriftError


class PathsMixin:
    _path: tuple[AccelerationPlan, object] | None = None  # the plan in force and its pipeline

    # ---- pipelines ------------------------------------------------------------------------------
    @property
    def pipeline(self):
        """The pipeline of the session-wide path (the options' plan)."""
        return self.pipeline_for(self.options.plan.label)

    def has_pipeline(self) -> bool:
        return self._path is not None

    def plan_reason(self, acceleration: str) -> str | None:
        """Why this run's device cannot take the path `acceleration` (None: it can)."""
        plan = AccelerationPlan.from_label(acceleration)
        return None if self.device.startswith("cuda") else plan.cpu_reason()

    def check_acceleration(self) -> None:
        """Refuse, before any model is built, session-wide options this run's device cannot do. (The
        accel modules check again when applied; their errors also come out as IdriftError.)"""
        if self.options.accelerate == "lossy" and not self.device.startswith("cuda"):
            flag = self.options.flag("accelerate")
            raise IdriftError(
                f"{flag} lossy: fp8 matmuls need a CUDA GPU with fp8 tensor cores (sm_89+: L4, L40, RTX 4090, "
                f"H100); this run's device is {self.device} (profile {self.profile}). Use {flag} lossless, or run "
                "on such a GPU")

    def pipeline_for(self, acceleration: str):
        """The InfiniteYou pipeline of the path `acceleration` (RunSpec.acceleration), its plan's techniques
        applied in their documented order."""
        from idrift.accel.fast import AccelerationError
        from idrift.pipeline.infinite_you import InfiniteYouPipeline

        plan = AccelerationPlan.from_label(acceleration)
        if self._path is not None and self._path[0] == plan:
            return self._path[1]
        options_label = self.options.plan.label
        if acceleration == options_label:
            self.check_acceleration()
        reason = self.plan_reason(acceleration)
        if reason is not None:
            raise IdriftError(f"acceleration {reason}; this run's device is {self.device}")
        self.release_pipeline()
        pipeline = InfiniteYouPipeline(self.bundle)
        named = (" ".join(self.options.acceleration_args()) if acceleration == options_label and acceleration != EAGER
                 else f"acceleration {acceleration}")
        try:
            plan.apply(pipeline)
        except AccelerationError as exc:
            raise IdriftError(f"{named}: {exc}") from None
        self._path = (plan, pipeline)
        return pipeline

    def release_pipeline(self) -> None:
        """Undo the current plan; an irreversible one (fp8) takes the bundle with it, so the next
        pipeline is built on fresh bf16 weights."""
        if self._path is None:
            return
        plan, pipeline = self._path
        self._path = None
        if plan.reversible:
            plan.undo(pipeline)
        else:
            self.__dict__.pop("bundle", None)
        if plan.path != EAGER:
            import torch

            torch._dynamo.reset()  # the compiled graphs of the last path hold nothing the next one needs
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # ---- provenance of the session-wide path ---------------------------------------------------
    def acceleration_provenance(self) -> dict:
        """fast.provenance of the pipeline (mode, lossy, label, techniques, step cache settings) plus
        `spec_label` (the RunSpec.acceleration of this run) and, once images were made, the step cache's
        skip counts. Eager builds no pipeline for this: there is nothing to report."""
        if self.options.plan.label == EAGER:
            return {"mode": "eager", "lossy": False, "label": "eager", "techniques": [], "spec_label": EAGER}
        from idrift.accel.fast import provenance

        plan = self.options.plan
        if self._path is not None and self._path[0] != plan:  # another path is in force (fast_paths): don't switch
            return dict(plan.provenance(), spec_label=plan.label)
        out = dict(provenance(self.pipeline), spec_label=plan.label)
        cache = self.pipeline.hooks.step_cache
        if cache is not None:
            out["step_cache_stats"] = cache.stats()["total"]  # computed/skipped steps, skip rate, images
        return out

    def memory_provenance(self) -> dict | None:
        """A summary of memory.memory_report (None without --idrift-memory)."""
        if self.options.memory == "off":
            return None
        from idrift.accel.memory import memory_report

        report = memory_report(self.pipeline)
        keys = ("techniques", "lossy", "label", "budget_bytes", "expected_peak_bytes", "fits_budget", "bytes_moved",
                "offload_device")
        return {k: report[k] for k in keys if k in report}

    def refresh_acceleration_provenance(self) -> None:
        """Update the step cache counts and the memory summary in `provenance` (they grow with the run)."""
        if "provenance" not in self.__dict__ or not self.has_pipeline():
            return  # nothing measured yet, or a session read back from a run (its provenance is the run's)
        self.provenance["acceleration"] = self.acceleration_provenance()
        if self.options.memory != "off":
            self.provenance["memory"] = self.memory_provenance()

    def acceleration_line(self) -> str | None:
        """One line for the end-of-run summary; None on the eager reference path."""
        label = self.options.plan.label
        if label == EAGER:
            return None
        line = f"acceleration {label} ({' '.join(self.options.acceleration_args())})"
        if self.options.lossy:
            line += ": LOSSY, numbers deviate from the reference path"
            measured = (self.provenance.get("acceleration") or {}) if "provenance" in self.__dict__ else {}
            stats = measured.get("step_cache_stats")
            if stats:
                line += f"; step cache skipped {stats['skipped']} of {stats['computed'] + stats['skipped']} steps"
        else:
            line += ": lossless, same function as eager up to bf16 reassociation"
        return line
