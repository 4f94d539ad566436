"""Which numerical path a pipeline takes: one `AccelerationPlan` per path, named by its label.

A plan owns three things and derives everything else from them:

    path        "eager" (the reference), "stock-compile" (diffusers' `compile_repeated_blocks`: the peer
                every speed-up is also reported against), "lossless" (idrift.accel.fast, mode "lossless")
                or "fp8" (idrift.accel.fast, mode "lossy": fp8 matmuls on top of lossless)
    step_cache  a First-Block-Cache threshold (idrift.accel.step_cache, lossy), or None
    memory      "off", "offload" (idrift.accel.memory.fit_memory) or "offload-8bit" (8-bit weights, lossy)

Its `label` is `RunSpec.acceleration`, part of a sample's key: "eager", "stock-compile", "lossless",
"offload", "lossless+offload", or "lossy:<parts>" when any part changes the numbers ("lossy:fp8",
"lossy:fbc0.12", "lossy:lossless+fbc0.12", "lossy:fp8+fbc0.12+8bit"). `AccelerationPlan.from_label` reads a
label back by its exact grammar and refuses any label that is not some plan's canonical one.

Its `techniques` are applied in order (fast path, then memory mode, then step cache, as the modules
document) and undone in reverse; a technique without `undo` (fp8 replaces the weights) makes the plan
irreversible: the session builds a fresh bundle for it and releases it afterwards.

This module imports no torch: claims and specs name plans without loading a model.

    >>> plan = AccelerationPlan("fp8", step_cache=0.12)
    >>> plan.label, plan.lossy, [t.name for t in plan.techniques], plan.reversible
    ('lossy:fp8+fbc0.12', True, ['fp8', 'step_cache'], False)
    >>> AccelerationPlan.from_label("lossless+offload") == AccelerationPlan("lossless", memory="offload")
    True
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from idrift.errors import IdriftError

EAGER = "eager"
PATHS = (EAGER, "stock-compile", "lossless", "fp8")
MEMORY_MODES = ("off", "offload", "offload-8bit")
_MEMORY_PART = {"offload": "offload", "offload-8bit": "8bit"}
_FBC = re.compile(r"fbc(?P<t>[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)")
LOSSY_PREFIX = "lossy:"


@dataclass(frozen=True)
class AccelerationPlan:
    path: str = EAGER
    step_cache: float | None = None
    memory: str = "off"

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"AccelerationPlan.path must be one of {PATHS}, got {self.path!r}")
        if self.memory not in MEMORY_MODES:
            raise ValueError(f"AccelerationPlan.memory must be one of {MEMORY_MODES}, got {self.memory!r}")
        if self.step_cache is not None and (isinstance(self.step_cache, bool) or not math.isfinite(self.step_cache)
                                            or self.step_cache < 0):
            raise ValueError(f"AccelerationPlan.step_cache must be a threshold >= 0 or None, got {self.step_cache!r}")

    # ---- the label --------------------------------------------------------------------------
    @property
    def lossy(self) -> bool:
        return any(t.lossy for t in self.techniques)

    @property
    def label(self) -> str:
        parts = [] if self.path == EAGER else [self.path]
        parts += [] if self.step_cache is None else [f"fbc{self.step_cache:g}"]
        parts += [_MEMORY_PART[self.memory]] if self.memory != "off" else []
        if not parts:
            return EAGER
        return (LOSSY_PREFIX if self.lossy else "") + "+".join(parts)

    @classmethod
    def from_label(cls, label: str) -> AccelerationPlan:
        """The plan whose `label` is `label`; a ValueError names the grammar for anything else."""
        if label == EAGER:
            return cls()
        body = label[len(LOSSY_PREFIX):] if isinstance(label, str) and label.startswith(LOSSY_PREFIX) else label
        fields: dict[str, Any] = {}
        for part in body.split("+") if isinstance(body, str) else [None]:
            memory = {v: k for k, v in _MEMORY_PART.items()}.get(part)
            match = _FBC.fullmatch(part) if isinstance(part, str) else None
            if part in PATHS[1:] and "path" not in fields:
                fields["path"] = part
            elif memory is not None and "memory" not in fields:
                fields["memory"] = memory
            elif match is not None and "step_cache" not in fields:
                fields["step_cache"] = float(match["t"])
            else:
                raise ValueError(_label_error(label))
        plan = cls(**fields)
        if plan.label != label:
            raise ValueError(_label_error(label) + f"; the canonical label of that plan is {plan.label!r}")
        return plan

    # ---- the techniques ---------------------------------------------------------------------
    @property
    def techniques(self) -> tuple:  # of idrift.accel.techniques.Technique
        from idrift.accel import techniques as t

        out = []
        if self.path != EAGER:
            out.append(t.fast_path(self.path, cuda_graphs=self.memory == "off"))
        if self.memory != "off":
            out.append(t.memory_mode(self.memory))
        if self.step_cache is not None:
            out.append(t.step_cache(self.step_cache))
        return tuple(out)

    @property
    def reversible(self) -> bool:
        return all(t.undo is not None for t in self.techniques)

    def cpu_reason(self) -> str | None:
        """Why this plan cannot run on a CPU (the first technique that needs CUDA), or None."""
        return next((f"{self.label}: {t.needs_cuda}" for t in self.techniques if t.needs_cuda), None)

    def apply(self, pipeline) -> dict:
        """Apply every technique to `pipeline` in order; returns {technique name: its report}. The pipeline
        keeps the plan (`pipeline.plan`) so that `undo` and `provenance` need nothing else."""
        if getattr(pipeline, "plan", None) not in (None, AccelerationPlan()):
            raise IdriftError(f"the pipeline already follows the plan {pipeline.plan.label!r}: undo it first")
        reports = {}
        for technique in self.techniques:
            reports[technique.name] = technique.apply(pipeline)
        pipeline.plan = self
        return reports

    def undo(self, pipeline) -> None:
        """Revert every technique, last first; an irreversible plan raises (rebuild the bundle instead)."""
        if not self.reversible:
            fixed = ", ".join(t.name for t in self.techniques if t.undo is None)
            raise IdriftError(f"the plan {self.label!r} cannot be undone ({fixed} "
                              "replaces the weights): build a fresh bundle")
        for technique in reversed(self.techniques):
            technique.undo(pipeline)
        pipeline.plan = AccelerationPlan()

    def provenance(self, pipeline=None) -> dict:
        """What every result made on this path records: the label, lossy or not, and each technique's
        provenance (with `pipeline`, what it actually did there)."""
        out: dict[str, Any] = {"label": self.label, "lossy": self.lossy, "path": self.path,
                               "techniques": [t.name for t in self.techniques]}
        if pipeline is not None:
            for technique in self.techniques:
                out[technique.name] = technique.provenance(pipeline)
        return out


def _label_error(label) -> str:
    return (f"{label!r} is not an acceleration label: 'eager', or parts joined by '+' (one of "
            f"{', '.join(PATHS[1:])}; fbc<threshold>; offload or 8bit), prefixed 'lossy:' when fp8, fbc or 8bit "
            "is among them (idrift.accel.plan)")
