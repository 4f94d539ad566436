"""From per-sample records to a claim's figures, and the check of its expectations.

`evaluate` runs the claim's summary (SUMMARIES[claim.summary], one module per claim family in
idrift.evaluate.summaries) over its records (idrift.evaluate.records), which returns `figures` (metric id
-> number: what the baseline stores and the gate compares) and `samples` (metric id -> {paired sample key
-> number}: what the paired gate resamples). It then gives every figure its uncertainty (`intervals`:
metric id -> idrift.stats.Figure): means over samples by the gate's seed-clustered bootstrap, other figures
(peak step, drop, rank correlations, fractions, minima) by re-running the summary on identities drawn with
replacement, counts and bitwise checks exact. `check_expectations` (idrift.evaluate.expectations) words
each expectation by idrift.verdicts.decide.

This module is the package's entry: the names below are what the rest of idrift imports from it.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from idrift import verdicts
from idrift.claims import Claim
from idrift.evaluate.expectations import (
    ExpectationOutcome,
    check_expectations,
    claim_line,
    claim_verdict,
    figure_of,
    summary_lines,
)
from idrift.evaluate.figures import put_figure, spearman
from idrift.evaluate.records import ClaimResult, Table, arm_of, metric_of
from idrift.evaluate.summaries import SUMMARIES
from idrift.stats import exact, identity_bootstrap, mean_figure

__all__ = [
    "AGGREGATIONS", "SUMMARIES", "ClaimResult", "ExpectationOutcome", "Table", "add_intervals", "arm_of",
    "check_expectations", "claim_line", "claim_verdict", "evaluate", "figure_of", "metric_of", "summary_lines",
]

AGGREGATIONS = ("zero", "detected")


def _backend_agreement(result: ClaimResult, records: list[dict]) -> None:
    """Rank correlation of the two face backends over the samples where both found a face."""
    pairs = [(r["metrics"]["id_sim"]["id_sim"], r["metrics"]["id_sim_agreement"]["id_sim"]) for r in records
             if r.get("metrics", {}).get("id_sim", {}).get("id_sim") is not None
             and r.get("metrics", {}).get("id_sim_agreement", {}).get("id_sim") is not None]
    if len(pairs) >= 3:
        put_figure(result, "backend_agreement_spearman", value=spearman(*map(list, zip(*pairs))))
        result.figures["backend_agreement_n"] = float(len(pairs))


def _run_summary(result: ClaimResult, records: list[dict], aggregation: str) -> None:
    """The claim's summary, plus `<metric>[<arm>]` means of every registered metric (idrift.metrics) it lists."""
    from idrift.metrics import REGISTRY

    table = Table(result.claim, records, aggregation)
    SUMMARIES[result.claim.summary](result, table)
    registered = tuple(m for m in result.claim.metrics if m in REGISTRY)
    if registered:
        for arm in result.claim.arms:
            for metric in registered:
                put_figure(result, f"{metric}[{arm.name}]", table.values(arm.name, metric))


def _summarise(claim: Claim, records: list[dict], aggregation: str) -> ClaimResult:
    result = ClaimResult(claim=claim)
    _run_summary(result, records, aggregation)
    return result


EXACT_PARTS = ("structural", "count")  # counts and bitwise checks: no sampling error


def add_intervals(result: ClaimResult, records: list[dict], aggregation: str) -> None:
    """Every figure's Figure: means clustered by (identity, prompt), the rest over identities."""
    others = []
    for metric, value in result.figures.items():
        if metric in result.intervals:  # the summary's own (timings: a bootstrap over the rounds)
            continue
        if verdicts.part_of(metric) in EXACT_PARTS:
            result.intervals[metric] = exact(value)
        elif result.samples.get(metric):
            result.intervals[metric] = mean_figure(result.samples[metric])
        else:
            others.append(metric)
    if not others:
        return
    by_identity: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        if record.get("status", "ok") == "ok":
            by_identity[record["spec"]["identity"]].append(record)
    identities = sorted(by_identity)

    def recompute(drawn: list[str]) -> dict[str, float]:
        renamed = [{**r, "spec": {**r["spec"], "identity": f"{ident}#{i}"}}
                   for i, ident in enumerate(drawn) for r in by_identity[ident]]
        return _summarise(result.claim, renamed, aggregation).figures

    result.intervals.update(identity_bootstrap(identities, recompute, {m: result.figures[m] for m in others}))


def evaluate(claim: Claim, records: list[dict], aggregation: str = "zero") -> ClaimResult:
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    result = ClaimResult(claim=claim, n_records=len(records),
                         n_failed=sum(r.get("status", "ok") != "ok" for r in records))
    _run_summary(result, records, aggregation)
    _backend_agreement(result, records)
    # An undefined figure (a rank correlation of constant values, say) is absent, not NaN.
    undefined = sorted(k for k, v in result.figures.items() if not np.isfinite(v))
    for key in undefined:
        del result.figures[key]
    if undefined:
        result.notes.append(f"undefined on this run (constant or missing inputs): {', '.join(undefined)}")
    if result.n_failed:
        result.notes.append(f"{result.n_failed} of {len(records)} samples failed (recorded in the store)")
    add_intervals(result, records, aggregation)
    return result
