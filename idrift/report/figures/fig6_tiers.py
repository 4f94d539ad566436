"""Figure 6: one panel per prompt tier, ID_sim of FLUX.1-dev against steps, dotted FLUX.1-schnell 4-step
reference (paper Figure 6)."""

from __future__ import annotations

import math

from idrift.report.captions import TIER_NOTE, caption, interval_text, per_point, profile_caveat
from idrift.report.data import COMPLEXITY, MissingData, RunData, identity_figure
from idrift.report.plot import DEV_COLOR, PAPER_COLOR, SCHNELL_COLOR, curve_with_band, legend_outside, new_figure

NAME = "figure6_tiers.png"


def tier_curves(data: RunData, claim_id: str, backbone: str, metric: str = "id_sim") -> dict[str, dict]:
    """prompt tier -> {steps: Figure} of the claim's arms of `backbone`, in tier order."""
    arms = sorted((a for a in data.arms(claim_id) if a.backbone == backbone), key=lambda a: a.steps)
    out = {}
    for prompt in data.tiers(claim_id):
        curve = {a.steps: f for a in arms if (f := identity_figure(data.arm_samples(claim_id, a.name, metric, prompt)))}
        if curve:
            out[prompt] = curve
    return out


def _caption(data: RunData, dev: dict) -> str:
    n = max((f.n or 0 for c in dev.values() for f in c.values()), default=0)
    caveat = profile_caveat(data.profile, ("id_sim",), data.faceless(COMPLEXITY))
    rho = data.interval(COMPLEXITY, "tier_drift_spearman")
    finding = "" if caveat or rho is None else f"Spearman correlation of drift with tier: {rho.text(3)}"
    return caption(
        "Figure 6 (paper Figure 6): identity drift per prompt tier. Each panel: mean ID_sim of FLUX.1-dev against "
        "denoising steps (x0 of one 28-step trajectory) for one prompt tier; dotted orange: FLUX.1-schnell at "
        "4 steps on the same tier; red: the paper's drift where it states one (minimal 0.008, style 0.092)",
        per_point(data, COMPLEXITY, n, "the paper used its top-10 identities"), TIER_NOTE, interval_text(), caveat,
        finding)


def build(data: RunData, name: str = NAME):
    data.require(COMPLEXITY)
    dev = tier_curves(data, COMPLEXITY, "dev")
    if not dev:
        raise MissingData(f"{COMPLEXITY} holds no FLUX.1-dev ID_sim samples")
    schnell = tier_curves(data, COMPLEXITY, "schnell")
    cols = 3
    rows = max(1, math.ceil(len(dev) / cols))
    fig, plots, axes = new_figure(name, _caption(data, dev), rows, cols, sharex=True, sharey=True)
    for i, (prompt, curve) in enumerate(dev.items()):
        ax = axes[i // cols, i % cols]
        curve_with_band(ax, list(curve), list(curve.values()), "FLUX.1-dev (trajectory)", DEV_COLOR, marker="o",
                        markersize=3)
        ref = schnell.get(prompt, {}).get(4)
        if ref is not None:
            ax.axhline(ref.value, color=SCHNELL_COLOR, linestyle=":", linewidth=2, label="FLUX.1-schnell, 4 steps")
        paper = data.paper_value(COMPLEXITY, f"drift[{prompt}]")
        title = f"tier {i}: {prompt}" + (f" (paper drift {paper:g})" if paper is not None else "")
        ax.set_title(title, fontsize=9, color=PAPER_COLOR if paper is not None else "black")
        if i % cols == 0:
            ax.set_ylabel("mean ID_sim")
        if i // cols == rows - 1:
            ax.set_xlabel("denoising steps")
    for j in range(len(dev), rows * cols):
        axes[j // cols, j % cols].set_visible(False)
    legend_outside(plots, *axes.flat, ncols=2)
    return fig
