"""The latency family's summary: each arm's median seconds per image and the dev-28 / schnell-4 speed-up
(the paper's Table 1 latency columns), from the timed rounds stored with each arm's sample."""

from __future__ import annotations

from idrift.evaluate.records import ClaimResult, Table
from idrift.stats import median_figure, ratio_figure


def summary_latency(result: ClaimResult, table: Table) -> None:
    """Median seconds per arm and the dev-28 / schnell-4 speed-up, from the timed rounds stored with each
    arm's sample (the metric `latency`: idrift.metrics.latency.time_rounds), each with a bootstrap interval
    over the rounds (the rounds are the independent units of a timing)."""
    for arm in result.claim.arms:
        rounds = [float(t) for record in table.by_arm.get(arm.name, {}).values()
                  for t in (record.get("metrics", {}).get("latency") or {}).get("seconds", [])]
        if not rounds:
            continue
        result.timings[arm.name] = rounds
        figure = median_figure(rounds)
        result.figures[f"latency_s[{arm.name}]"] = figure.value
        result.intervals[f"latency_s[{arm.name}]"] = figure
    if {"dev-28", "schnell-4"} <= result.timings.keys():
        figure = ratio_figure(result.timings["dev-28"], result.timings["schnell-4"])
        result.figures["speedup"] = figure.value
        result.intervals["speedup"] = figure
