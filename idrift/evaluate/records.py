"""A claim's per-sample records, and the table of them that every summary reads.

A record is `{"spec": RunSpec dict, "metrics": {"id_sim": {...}, "lpips": {...}, "pixels": {...}}}`.
`Table` indexes a claim's finished records by arm name (`arm_of`) and paired sample key (`sample_key`),
and reads each record's value of a metric (`metric_of`).

Aggregation of ID_sim: a generated image with no detected face counts as 0 ("zero", the default and
the conservative choice: losing the face is losing the identity) or is left out ("detected"). The
detection rate is reported beside every mean either way.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from idrift.claims import Arm, Claim
from idrift.config import EAGER, RunSpec
from idrift.stats import Figure


@dataclass
class ClaimResult:
    claim: Claim
    figures: dict[str, float] = field(default_factory=dict)
    samples: dict[str, dict[str, float]] = field(default_factory=dict)
    intervals: dict[str, Figure] = field(default_factory=dict)
    timings: dict[str, list[float]] = field(default_factory=dict)  # arm -> timed rounds (seconds): latency only
    notes: list[str] = field(default_factory=list)
    n_records: int = 0
    n_failed: int = 0


def arm_of(spec: dict, arms: tuple[Arm, ...]) -> Arm | None:
    """The arm a sample belongs to: every RunSpec field the arm sets (Arm.spec_fields) matches. A claim whose
    arms all take the eager path is run on whichever path the session's options name, so its arms match
    any `acceleration`; one whose arms name their paths (fast_paths) matches it too. An arm with a `method`
    (idrift.scoring.claims.MethodArm) holds that scored method's samples only; the paper's arms hold
    idrift's own (RunSpec.method "")."""
    own_paths = any(arm.acceleration != EAGER for arm in arms)
    for arm in arms:
        if spec.get("method", "") != getattr(arm, "method", ""):
            continue
        fields = arm.spec_fields()
        if not own_paths:
            del fields["acceleration"]
        if all(spec.get(name, _SPEC_DEFAULTS.get(name)) == value for name, value in fields.items()):
            return arm
    return None


_SPEC_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunSpec)}  # a field older records lack


def sample_key(spec: dict) -> str:
    return f"{spec['identity']}|{spec['prompt_id']}|{spec['seed']}"


def id_sim_of(record: dict, aggregation: str) -> float | None:
    """A record's ID_sim under the aggregation rule; None when it does not count."""
    values = record.get("metrics", {}).get("id_sim")
    if values is None:
        return None
    if values.get("id_sim") is None:  # no face found in the generated image
        return 0.0 if aggregation == "zero" else None
    return float(values["id_sim"])


def metric_of(record: dict, metric: str, aggregation: str) -> float | None:
    """A record's value of `metric`: ID_sim under the aggregation rule, a pixel statistic, or any other
    metric (LPIPS, the registered ones of idrift.metrics) stored as {"<metric>": value} under its own name."""
    if metric == "id_sim":
        return id_sim_of(record, aggregation)
    group, name = {"pixel_mean": ("pixels", "pixel_mean")}.get(metric, (metric, metric))
    values = record.get("metrics", {}).get(group)
    return None if values is None or values.get(name) is None else float(values[name])


class Table:
    """Records indexed by arm name and paired sample key."""

    def __init__(self, claim: Claim, records: list[dict], aggregation: str):
        self.aggregation = aggregation
        self.by_arm: dict[str, dict[str, dict]] = defaultdict(dict)
        for record in records:
            arm = arm_of(record["spec"], claim.arms)
            if arm is not None and record.get("status", "ok") == "ok":
                self.by_arm[arm.name][sample_key(record["spec"])] = record

    def values(self, arm: str, metric: str) -> dict[str, float]:
        out = {}
        for key, record in self.by_arm.get(arm, {}).items():
            value = metric_of(record, metric, self.aggregation)
            if value is not None:
                out[key] = value
        return out

    def detection_rate(self, arm: str) -> float | None:
        records = [r for r in self.by_arm.get(arm, {}).values() if "id_sim" in r.get("metrics", {})]
        if not records:
            return None
        return float(np.mean([r["metrics"]["id_sim"].get("id_sim") is not None for r in records]))
