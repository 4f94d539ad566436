"""Figure 4: ID_sim against steps for every conditioning scale alpha, and the drift per alpha (paper Figure 4)."""

from __future__ import annotations

import numpy as np

from idrift.claims import ALPHAS
from idrift.report.captions import caption, interval_text, per_point, profile_caveat
from idrift.report.data import MissingData, RunData, identity_figure
from idrift.report.plot import PAPER_COLOR, curve_with_band, errorbars, legend_outside, new_figure

NAME = "figure4_alpha.png"
CLAIM = "figure4_alpha"


def _curves(data: RunData) -> dict[float, dict[int, object]]:
    curves = {}
    for alpha in ALPHAS:
        arms = sorted((a for a in data.arms(CLAIM) if a.alpha == alpha), key=lambda a: a.steps)
        curve = {a.steps: f for a in arms if (f := identity_figure(data.arm_samples(CLAIM, a.name, "id_sim")))}
        if curve:
            curves[alpha] = curve
    return curves


def _caption(data: RunData, curves) -> str:
    n = max((f.n or 0 for c in curves.values() for f in c.values()), default=0)
    caveat = profile_caveat(data.profile, ("id_sim",), data.faceless(CLAIM))
    finding = ""
    low, high = data.interval(CLAIM, "min_drift"), data.interval(CLAIM, "max_drift")
    if not caveat and low is not None and high is not None:
        finding = f"Measured drift from {low.text(3)} (smallest) to {high.text(3)} (largest) across alphas"
    return caption(
        "Figure 4 (paper Figure 4). Left: mean ID_sim of FLUX.1-dev against denoising steps (x0 of one 28-step "
        "trajectory) for each InfuseNet scale alpha. Right: drift magnitude (peak minus 28-step value) per alpha; "
        "red band: the paper's range 0.021-0.118, red line: the paper's peak at 4 steps",
        per_point(data, CLAIM, n),
        interval_text() + "; drift bars: identity bootstrap of idrift.evaluate", caveat, finding)


def build(data: RunData, name: str = NAME):
    data.require(CLAIM)
    curves = _curves(data)
    if not curves:
        raise MissingData(f"{CLAIM} holds no ID_sim samples")
    fig, plots, axes = new_figure(name, _caption(data, curves), 1, 2, width_ratios=(3, 2))
    left, right = axes[0]
    colors = dict(zip(ALPHAS, [f"C{i}" for i in range(len(ALPHAS))]))
    for alpha, curve in curves.items():
        curve_with_band(left, list(curve), list(curve.values()), f"alpha {alpha:g}", colors[alpha], marker="o",
                        markersize=3, band_alpha=0.08)
    peak = data.paper_value(CLAIM, "max_peak_step")
    if peak is not None:
        left.axvline(peak, color=PAPER_COLOR, linestyle=":", label=f"paper: every alpha peaks at {peak:g} steps")
    left.set(xlabel="denoising steps", ylabel="mean ID_sim", title="ID_sim vs steps, one curve per alpha")
    alphas = [a for a in ALPHAS if data.figure(CLAIM, f"drift[a{a:g}]") is not None]
    x = np.arange(len(alphas))
    right.bar(x, [data.figure(CLAIM, f"drift[a{a:g}]") for a in alphas], 0.6,
              color=[colors[a] for a in alphas])
    errorbars(right, x, [data.interval(CLAIM, f"drift[a{a:g}]") for a in alphas], fmt="none", ecolor="black")
    low, high = data.paper_value(CLAIM, "min_drift"), data.paper_value(CLAIM, "max_drift")
    if low is not None and high is not None:
        right.axhspan(low, high, color=PAPER_COLOR, alpha=0.12, label=f"paper: drift {low:g}-{high:g}")
    right.axhline(0, color="0.3", linewidth=0.8)
    right.set_xticks(x, [f"{a:g}" for a in alphas])
    right.set(xlabel="conditioning scale alpha", ylabel="drift (peak minus 28-step ID_sim)",
              title="Drift magnitude per alpha")
    legend_outside(plots, left, right, ncols=5)
    return fig
