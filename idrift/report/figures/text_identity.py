"""Beyond the paper (issue #21): text-identity competition. ID_sim and CLIP-T (text-image alignment) of
FLUX.1-dev against steps, one line per prompt tier: does the identity fade as the text takes over?"""

from __future__ import annotations

from idrift.report.captions import (
    BEYOND_PAPER,
    TIER_NOTE,
    caption,
    interval_text,
    per_point,
    profile_caveat,
)
from idrift.report.data import TEXT_IDENTITY, MissingData, RunData
from idrift.report.figures.fig6_tiers import tier_curves
from idrift.report.plot import curve_with_band, legend_outside, new_figure

NAME = "text_identity_competition.png"
METRICS = (("id_sim", "mean ID_sim (identity)"), ("clip_t", "mean CLIP-T (text alignment)"))


def build(data: RunData, name: str = NAME):
    data.require(TEXT_IDENTITY)
    curves = {metric: tier_curves(data, TEXT_IDENTITY, "dev", metric) for metric, _ in METRICS}
    if not any(curves.values()):
        raise MissingData(f"{TEXT_IDENTITY} holds no ID_sim or CLIP-T samples of FLUX.1-dev")
    tiers = [p for p in data.tiers(TEXT_IDENTITY) if any(p in c for c in curves.values())]
    n = max((f.n or 0 for c in curves.values() for curve in c.values() for f in curve.values()), default=0)
    caveat = profile_caveat(data.profile, ("id_sim", "clip_t"), data.faceless(TEXT_IDENTITY))
    fig, plots, axes = new_figure(name, caption(
        f"{BEYOND_PAPER} text-identity competition; the paper has no such figure. Top: mean ID_sim of FLUX.1-dev "
        "against denoising steps, one line per prompt tier; bottom: mean CLIP-T (CLIP text-image alignment) of "
        "the same images",
        per_point(data, TEXT_IDENTITY, n),
        TIER_NOTE, interval_text(), caveat), 2, 1, sharex=True)
    colors = {p: f"C{i}" for i, p in enumerate(tiers)}
    for row, (metric, label) in enumerate(METRICS):
        ax = axes[row, 0]
        for prompt in tiers:
            curve = curves[metric].get(prompt)
            if curve:
                curve_with_band(ax, list(curve), list(curve.values()), prompt, colors[prompt], marker="o",
                                markersize=3, band_alpha=0.1)
        if not curves[metric]:
            ax.text(0.5, 0.5, f"no {metric} samples in this run", transform=ax.transAxes, ha="center")
        ax.set_ylabel(label)
    axes[0, 0].set_title("Beyond the paper: identity vs text alignment over steps, per prompt tier")
    axes[1, 0].set_xlabel("denoising steps")
    legend_outside(plots, axes[0, 0], axes[1, 0], ncols=min(6, max(1, len(tiers))))
    return fig
