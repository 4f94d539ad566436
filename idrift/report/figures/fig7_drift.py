"""Figure 7: drift magnitude per prompt tier (dev solid, schnell hatched), and the 2D similarity landscape
over steps x prompt tier with its FLUX.1-dev and FLUX.1-schnell halves (paper Figure 7)."""

from __future__ import annotations

import numpy as np

from idrift.report.captions import TIER_NOTE, caption, profile_caveat, setting
from idrift.report.captions import identities as identities_text
from idrift.report.data import COMPLEXITY, MissingData, RunData
from idrift.report.figures.fig6_tiers import tier_curves
from idrift.report.plot import DEV_COLOR, PAPER_COLOR, SCHNELL_COLOR, errorbars, legend_outside, new_figure
from idrift.stats import CONFIDENCE

BARS = "figures6_7_drift_by_tier.png"
HEATMAP = "figures6_7_heatmap.png"


def _setting(data: RunData) -> str:
    n = data.figure(COMPLEXITY, "n_identities")
    identities = len({r["spec"]["identity"] for r in data.records(COMPLEXITY)}) if n is None else int(n)
    return setting(data, COMPLEXITY, f"n = {identities_text(identities)}")


def build_bars(data: RunData, name: str = BARS):
    data.require(COMPLEXITY)
    tiers = [p for p in data.tiers(COMPLEXITY)
             if data.figure(COMPLEXITY, f"drift[{p}]") is not None or data.figure(COMPLEXITY, f"schnell_drift[{p}]")
             is not None]
    if not tiers:
        raise MissingData(f"{COMPLEXITY} has no per-tier drift figures (every sample failed?)")
    caveat = profile_caveat(data.profile, ("id_sim",), data.faceless(COMPLEXITY))
    fig, plots, axes = new_figure(name, caption(
        "Figure 7, left (paper Figure 7 left): drift magnitude per prompt tier. Solid: FLUX.1-dev (peak to its "
        "28-step value); hatched: FLUX.1-schnell (peak to its 4-step value); red crosses: the paper's dev drift "
        "(minimal, style), red dotted: the paper's bound on schnell drift (0.005)", _setting(data), TIER_NOTE,
        f"Error bars: {CONFIDENCE:.0%} identity bootstrap of idrift.evaluate", caveat))
    ax = axes[0, 0]
    x = np.arange(len(tiers))
    for offset, key, label, color, hatch in ((-0.2, "drift", "FLUX.1-dev, 28 steps", DEV_COLOR, None),
                                             (0.2, "schnell_drift", "FLUX.1-schnell, 4 steps", SCHNELL_COLOR, "//")):
        values = [data.figure(COMPLEXITY, f"{key}[{p}]") for p in tiers]
        ax.bar(x + offset, [np.nan if v is None else v for v in values], 0.4, label=label, color=color,
               hatch=hatch, edgecolor="black" if hatch else None, alpha=0.85 if hatch else 1.0)
        errorbars(ax, x + offset, [data.interval(COMPLEXITY, f"{key}[{p}]") for p in tiers], fmt="none",
                  ecolor="black")
    for prompt in tiers:
        value = data.paper_value(COMPLEXITY, f"drift[{prompt}]")
        if value is not None:
            ax.plot([tiers.index(prompt) - 0.2], [value], "x", color=PAPER_COLOR, markersize=10, mew=2,
                    label="paper: FLUX.1-dev drift")
    bound = data.paper_value(COMPLEXITY, "schnell_drift_max")
    if bound is not None:
        ax.axhline(bound, color=PAPER_COLOR, linestyle=":", label=f"paper: schnell drift <= {bound:g}")
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_xticks(x, tiers, rotation=15, fontsize=8)
    ax.set(xlabel="prompt tier (minimal to style)", ylabel="drift (peak minus last-step ID_sim)",
           title="Drift magnitude vs prompt complexity")
    legend_outside(plots, ax, ncols=2)
    return fig


def _grid(curves: dict[str, dict], tiers: list[str]) -> tuple[np.ndarray, list[int]]:
    steps = sorted({s for c in curves.values() for s in c})
    grid = np.full((len(tiers), len(steps)), np.nan)
    for i, prompt in enumerate(tiers):
        for j, s in enumerate(steps):
            if (f := curves.get(prompt, {}).get(s)) is not None:
                grid[i, j] = f.value
    return grid, steps


def _half(ax, grid, steps, tiers, title, norm, cmap="viridis"):
    image = ax.imshow(grid, aspect="auto", cmap=cmap, norm=norm)
    ax.set_xticks(range(len(steps)), [str(s) for s in steps], fontsize=8)
    ax.set_yticks(range(len(tiers)), tiers, fontsize=8)
    ax.set(xlabel="denoising steps", title=title)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                level = norm(grid[i, j])
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if np.ma.getdata(level) > 0.6 else "white")
    return image


def build_heatmap(data: RunData, name: str = HEATMAP):
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    data.require(COMPLEXITY)
    dev, schnell = tier_curves(data, COMPLEXITY, "dev"), tier_curves(data, COMPLEXITY, "schnell")
    if not dev:
        raise MissingData(f"{COMPLEXITY} holds no FLUX.1-dev ID_sim samples")
    tiers = [p for p in data.tiers(COMPLEXITY) if p in dev or p in schnell]
    dev_grid, dev_steps = _grid(dev, tiers)
    schnell_grid, schnell_steps = _grid(schnell, tiers)
    values = np.concatenate([dev_grid[np.isfinite(dev_grid)], schnell_grid[np.isfinite(schnell_grid)]])
    low, high = float(values.min()), float(values.max())
    # One colour scale for both halves; a constant map (faceless images) gets a readable +-0.05 scale.
    norm = Normalize(low, high) if high - low > 1e-9 else Normalize(low - 0.05, high + 0.05)
    caveat = profile_caveat(data.profile, ("id_sim",), data.faceless(COMPLEXITY))
    fig, plots, axes = new_figure(name, caption(
        "Figure 7, right (paper Figure 7 right): 2D identity similarity, steps x prompt tier, one colour scale. "
        "Left half: FLUX.1-dev (x0 of one 28-step trajectory); right half: FLUX.1-schnell (one run per budget); "
        "red dashed: where the paper places the dev peak (steps 4-8). Cells: mean ID_sim over identities",
        _setting(data), TIER_NOTE, caveat), 1, 2, width_ratios=(len(dev_steps), max(len(schnell_steps), 1) + 1),
        sharey=True)
    left, right = axes[0]
    image = _half(left, dev_grid, dev_steps, tiers, "FLUX.1-dev", norm)
    left.set_ylabel("prompt tier (minimal to style)")
    columns = [j for j, s in enumerate(dev_steps) if 4 <= s <= 8]
    if columns:
        left.add_patch(Rectangle((columns[0] - 0.5, -0.5), len(columns), len(tiers), fill=False,
                                 edgecolor=PAPER_COLOR, linestyle="--", linewidth=2))
    if schnell_steps:
        _half(right, schnell_grid, schnell_steps, tiers, "FLUX.1-schnell", norm)
    else:
        right.set_visible(False)
    plots.colorbar(image, ax=[left, right], label="mean ID_sim", shrink=0.9)
    return fig


