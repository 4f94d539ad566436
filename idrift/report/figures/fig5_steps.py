"""Figure 5 (left): ID_sim of FLUX.1-dev against the step budget, with the FLUX.1-schnell 4-step point."""

from __future__ import annotations

from idrift.claims import SCHNELL_4
from idrift.report.captions import caption, interval_text, per_point, profile_caveat
from idrift.report.data import SWAP_CLAIMS, MissingData, RunData, identity_figure
from idrift.report.plot import (
    DEV_COLOR,
    PAPER_COLOR,
    SCHNELL_COLOR,
    curve_with_band,
    errorbars,
    legend_outside,
    new_figure,
)

NAME = "figure5_drift.png"
CLAIM = "figure5_drift"


def _curve(data: RunData, mode: str) -> dict:
    arms = sorted((a for a in data.arms(CLAIM) if a.mode == mode), key=lambda a: a.steps)
    return {a.steps: f for a in arms if (f := identity_figure(data.arm_samples(CLAIM, a.name, "id_sim")))}


def _caption(data: RunData, budget: dict, schnell_claim: str | None) -> str:
    n = max((f.n or 0 for f in budget.values()), default=0)
    caveat = profile_caveat(data.profile, ("id_sim",), data.faceless(CLAIM))
    drop = data.interval(CLAIM, "drop")
    peak = data.interval(CLAIM, "peak_step")
    finding = "" if caveat or drop is None or peak is None else (
        f"Measured: peak at {peak.value:g} steps, drop to 28 steps {drop.text(3)} (paper: peak 0.609 at 4 steps, "
        "0.543 at 28, drop 0.066)")
    return caption(
        "Figure 5, left (paper Figure 5 left): identity drift of FLUX.1-dev. Solid: one run per step budget; "
        "dashed: x0 read off one 28-step trajectory; orange: FLUX.1-schnell at 4 steps"
        + (f" (samples of {schnell_claim})" if schnell_claim else " (not in this run)")
        + "; red crosses: the paper's peak and 28-step values",
        per_point(data, CLAIM, n),
        interval_text(), caveat, finding)


def build(data: RunData, name: str = NAME):
    data.require(CLAIM)
    budget, trajectory = _curve(data, "budget"), _curve(data, "trajectory")
    if not budget and not trajectory:
        raise MissingData(f"{CLAIM} has no per-step ID_sim samples (every sample failed?)")
    schnell_claim = next((c for c in SWAP_CLAIMS if data.has(c)), None)
    fig, plots, axes = new_figure(name, _caption(data, budget, schnell_claim))
    ax = axes[0, 0]
    if budget:
        curve_with_band(ax, list(budget), list(budget.values()), "FLUX.1-dev, one run per budget", DEV_COLOR,
                        marker="o")
    if trajectory:
        curve_with_band(ax, list(trajectory), list(trajectory.values()), "FLUX.1-dev, x0 of one 28-step run",
                        "tab:purple", marker="s", linestyle="--", markersize=4)
    if schnell_claim is not None and (point := identity_figure(data.arm_samples(schnell_claim, SCHNELL_4.name,
                                                                                "id_sim"))):
        errorbars(ax, [4], [point], fmt="*", color=SCHNELL_COLOR, markersize=14, label="FLUX.1-schnell, 4 steps")
    peak_step = data.paper_value(CLAIM, "peak_step")
    at_peak, at_28 = data.paper_value(CLAIM, "id_sim_at_peak"), data.paper_value(CLAIM, "id_sim_at_28")
    if None not in (peak_step, at_peak, at_28):
        ax.plot([peak_step, 28], [at_peak, at_28], "x", color=PAPER_COLOR, markersize=10, mew=2,
                label=f"paper: {at_peak:g} at {peak_step:g} steps, {at_28:g} at 28")
    ax.set(xlabel="denoising steps", ylabel="mean ID_sim", title="Identity drift of FLUX.1-dev over the step budget")
    legend_outside(plots, ax, ncols=2)
    return fig
