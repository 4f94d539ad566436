"""The band gate: a run's aggregate against an aggregate-only baseline (the paper's numbers).

No per-sample values on the baseline's side, so nothing to pair: the candidate's aggregate, with its
own interval or standard error when known, against a band of the tolerance around the baseline.
"""

from __future__ import annotations

import math

from scipy import stats

from idrift.baselines.verdict import Verdict, check_rule, fails, format_number, tolerance_margin
from idrift.stats import CONFIDENCE


def band_gate(
    candidate_aggregate: float,
    baseline_aggregate: float,
    *,
    tolerance: float,
    direction: str,
    tolerance_kind: str = "absolute",
    candidate_sem: float | None = None,
    candidate_interval: tuple[float, float] | None = None,
    confidence: float = CONFIDENCE,
    n: int | None = None,
    baseline_n: int | None = None,
    claim: str = "",
    metric: str = "",
) -> Verdict:
    """Aggregate-only baselines (no per-sample values, e.g. the paper's): a tolerance band.

    With the candidate's own interval (its bootstrap CI, idrift.stats), the interval of the
    difference is that interval minus the baseline; else with its standard error, difference +-
    z * sem (normal approximation of a mean); a noisy candidate is then failed only when clearly
    outside the band. Without either, the interval is the point. `n` is the candidate's n,
    `baseline_n` the n the baseline states.
    """
    check_rule(tolerance, direction, tolerance_kind)
    margin = tolerance_margin(tolerance, tolerance_kind, baseline_aggregate)
    verdict = Verdict(
        claim=claim, metric=metric, status="fail", baseline=float(baseline_aggregate),
        candidate=float(candidate_aggregate), difference=None, interval=None, tolerance=tolerance,
        direction=direction, n=n, tolerance_kind=tolerance_kind, margin=margin, baseline_n=baseline_n,
    )
    if not math.isfinite(candidate_aggregate):
        verdict.notes.append("the candidate value is NaN/inf: the measurement failed")
        return verdict
    diff = float(candidate_aggregate - baseline_aggregate)
    verdict.difference = diff
    if candidate_interval is not None and candidate_interval[0] < candidate_interval[1]:
        verdict.interval = (
            float(candidate_interval[0] - baseline_aggregate),
            float(candidate_interval[1] - baseline_aggregate),
        )
        verdict.method = f"{confidence:.0%} interval of the candidate (its bootstrap), minus the baseline"
    elif candidate_sem is not None and candidate_sem > 0:
        half = float(stats.norm.ppf(0.5 + confidence / 2)) * candidate_sem
        verdict.interval = (diff - half, diff + half)
        verdict.method = (
            f"{confidence:.0%} normal interval from the candidate's standard error {format_number(candidate_sem)}"
        )
    else:
        verdict.interval = (diff, diff)
        verdict.method = "point (no standard error given)"
        if direction == "equal" and margin == 0:
            verdict.method = "exact: point comparison"
    verdict.status = "fail" if fails(verdict.interval[0], verdict.interval[1], margin, direction) else "pass"
    return verdict
