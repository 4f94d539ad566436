"""What a summary builds its figures with: means and paired deltas of a Table's values, step curves and
the drift read off them, rank correlations, and `put_figure`, which stores a figure with the samples the gate
resamples. The summaries of idrift.evaluate.summaries and idrift.scoring.claims share them."""

from __future__ import annotations

import numpy as np
from scipy import stats

from idrift.claims import Arm
from idrift.evaluate.records import ClaimResult, Table


def mean_of(values: dict[str, float]) -> float | None:
    return float(np.mean(list(values.values()))) if values else None


def spearman(x: list[float], y: list[float]) -> float | None:
    """Rank correlation; undefined (None) when either side is constant."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(stats.spearmanr(x, y).statistic)


def paired_delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """b - a over the sample keys both have."""
    return {k: b[k] - a[k] for k in sorted(a.keys() & b.keys())}


def put_figure(result: ClaimResult, metric: str, samples: dict[str, float] | None = None,
               value: float | None = None) -> None:
    """Store `metric`: the mean of its per-sample values (kept for the paired gate), or `value`; a non-finite
    figure is left out."""
    if samples:
        result.samples[metric] = samples
        value = mean_of(samples)
    if value is not None and np.isfinite(value):
        result.figures[metric] = float(value)


def put_per_arm(result: ClaimResult, table: Table, metrics: tuple[str, ...]) -> None:
    for arm in result.claim.arms:
        for metric in metrics:
            put_figure(result, f"{metric}[{arm.name}]", table.values(arm.name, metric))
        rate = table.detection_rate(arm.name)
        if rate is not None:
            result.figures[f"detection_rate[{arm.name}]"] = rate


def step_curve(table: Table, arms: list[Arm], metric: str = "id_sim") -> dict[int, float]:
    return {arm.steps: m for arm in arms if (m := mean_of(table.values(arm.name, metric))) is not None}


def drift_figures(curve: dict[int, float]) -> dict[str, float]:
    """Peak step, value at the peak and at the last step, and the drop between them."""
    if not curve:
        return {}
    peak_step = max(curve, key=lambda s: (curve[s], -s))
    last = max(curve)
    return {"peak_step": float(peak_step), "id_sim_at_peak": curve[peak_step], f"id_sim_at_{last}": curve[last],
            "drop": curve[peak_step] - curve[last]}


def image_digest(record: dict) -> str | None:
    """The sha256 of a record's image: equal digests are bitwise-equal images."""
    return record.get("metrics", {}).get("pixels", {}).get("sha256")
