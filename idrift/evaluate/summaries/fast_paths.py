"""The fast_paths family's summary (idrift.evaluate.SUMMARIES): from each arm's stored sample to its figures.

Every arm of the claim is one (backbone, steps) on one numerical path (`Arm.acceleration`). Its sample
carries, like any other metric, `latency` (the timed rounds, peak GPU memory and the compile seconds of
the path's first call) and, for a path other than eager, `reference_diff` (its image against the eager
path's image of the same spec). The figures, per arm name (`schnell-4@lossless`):

    latency_s[arm]            median seconds per image, with a bootstrap interval over the rounds
    speedup_vs_eager[arm]     the eager arm's median over this arm's (same backbone and steps, same run)
    speedup_vs_stock[arm]     the stock-compile arm's median over this arm's: the peer
    compile_s[arm]            first call minus the steady-state median (where the path compiles)
    gpu_peak_gb[arm]          peak GPU memory allocated while timing (GPU only)
    reference_diff_mean[arm]  mean absolute 8-bit pixel difference from the eager image of the same spec
    reference_diff_max[arm]   its largest pixel difference

A figure whose inputs are missing (an arm skipped on a CPU, say) is absent: its expectation is then
NOT JUDGEABLE, with the reason the arm gave.
"""

from __future__ import annotations

from idrift.config import EAGER
from idrift.stats import Figure, exact, median_figure, ratio_figure

PEER = "stock-compile"
ONCE = "one measurement: a path compiles once per process; judged on its value"


def _only(records: dict) -> dict | None:
    """An arm's one timed sample (the claim times one identity, prompt and seed per arm)."""
    return next(iter(records.values()), None) if records else None


def _latency(record: dict | None) -> dict:
    return ((record or {}).get("metrics") or {}).get("latency") or {}


def summary_fast_paths(result, table) -> None:
    arms = result.claim.arms
    seconds = {a.name: list(_latency(_only(table.by_arm.get(a.name))).get("seconds") or []) for a in arms}
    for arm in arms:
        record = _only(table.by_arm.get(arm.name))
        timing = _latency(record)
        rounds = seconds[arm.name]
        if rounds:
            result.timings[arm.name] = rounds  # the gate's ratio test reads the rounds
            _figure(result, f"latency_s[{arm.name}]", median_figure(rounds))
        for kind, path in (("speedup_vs_eager", EAGER), ("speedup_vs_stock", PEER)):
            base = next((a for a in arms if a.acceleration == path and (a.backbone, a.steps, a.alpha, a.mode)
                         == (arm.backbone, arm.steps, arm.alpha, arm.mode)), None)
            if base is not None and base is not arm and rounds and seconds[base.name]:
                _figure(result, f"{kind}[{arm.name}]", ratio_figure(seconds[base.name], rounds))
        if timing.get("compile_s") is not None:
            value = float(timing["compile_s"])
            _figure(result, f"compile_s[{arm.name}]", Figure(value, 1, None, (value, value), ONCE))
        if timing.get("gpu_peak_bytes"):
            _figure(result, f"gpu_peak_gb[{arm.name}]", exact(timing["gpu_peak_bytes"] / 1e9))
        diff = ((record or {}).get("metrics") or {}).get("reference_diff") or {}
        for name in ("mean", "max"):
            if diff.get(f"pixel_{name}") is not None:
                _figure(result, f"reference_diff_{name}[{arm.name}]", exact(float(diff[f"pixel_{name}"])))


def _figure(result, metric: str, figure) -> None:
    result.figures[metric] = figure.value
    result.intervals[metric] = figure


def speedup_rounds(result, metric_id: str) -> tuple[list, list] | None:
    """(reference rounds, path rounds) of a timed speed-up figure when both arms were timed in this run,
    for the gate's ratio test: the latency claim's `speedup` (dev-28 over schnell-4) and this claim's
    speedup_vs_eager[arm] / speedup_vs_stock[arm]; else None (the figure is judged on its value)."""
    timings = result.timings
    if metric_id == "speedup" and {"dev-28", "schnell-4"} <= timings.keys():
        return timings["dev-28"], timings["schnell-4"]
    arms = result.claim.arms
    for kind, path in (("speedup_vs_eager", EAGER), ("speedup_vs_stock", PEER)):
        arm = next((a for a in arms if metric_id == f"{kind}[{a.name}]"), None)
        base = arm and next((a for a in arms if a.acceleration == path and (a.backbone, a.steps, a.alpha, a.mode)
                             == (arm.backbone, arm.steps, arm.alpha, arm.mode)), None)
        if base is not None and len(timings.get(base.name) or []) >= 2 and len(timings.get(arm.name) or []) >= 2:
            return timings[base.name], timings[arm.name]
    return None
