"""Drawing helpers shared by the figures: a fixed-size figure with a caption band, error bars and bands
from idrift.stats.Figure intervals, and saving with the run's provenance in the PNG's text chunks.

Plots use matplotlib's object API on the Agg canvas (no pyplot state, no display needed). A figure's
size is fixed (`FIGURE_SIZES` at `DPI`), so its pixel size is known; the caption sits in its own band
below the plots (a subfigure), where no legend can cover it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idrift.report.captions import wrap

DPI = 100
CAPTION_FONT = 8.5
FIGURE_SIZES = {  # inches at DPI; file name -> (width, height), caption band included
    "figure3_per_identity.png": (10.0, 6.5),
    "figure4_alpha.png": (12.0, 5.8),
    "figure5_drift.png": (8.5, 6.2),
    "figure5_guidance.png": (11.0, 5.6),
    "figure6_tiers.png": (12.0, 8.2),
    "figures6_7_drift_by_tier.png": (9.0, 6.2),
    "figures6_7_heatmap.png": (12.0, 6.0),
    "text_identity_competition.png": (10.0, 8.2),
}
DEV_COLOR, SCHNELL_COLOR, PAPER_COLOR = "tab:blue", "tab:orange", "tab:red"


def new_figure(name: str, caption_text: str, nrows: int = 1, ncols: int = 1, **subplots):
    """(figure, axes) of FIGURE_SIZES[name] with `caption_text` wrapped in a band under the plots."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = FIGURE_SIZES[name]
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    text = wrap(caption_text, width - 0.3, CAPTION_FONT)
    band = (text.count("\n") + 1) * CAPTION_FONT * 1.45 / 72 + 0.15
    plots, below = fig.subfigures(2, 1, height_ratios=(height - band, band))
    below.text(0.01, 0.98, text, ha="left", va="top", fontsize=CAPTION_FONT, transform=below.transSubfigure)
    fig.idrift_caption = caption_text  # saved into the PNG's text chunks, read by tests and readers
    axes = plots.subplots(nrows, ncols, squeeze=False, **subplots)
    return fig, plots, axes


def save(fig, data, out: Path, name: str) -> None:
    """Fixed size (no bbox_inches="tight"): the pixel size is FIGURE_SIZES[name] x DPI."""
    fig.savefig(out / name, dpi=DPI, format="png",
                metadata={"Software": "idrift", "Title": name, "Description": data.provenance_text(),
                          "Comment": getattr(fig, "idrift_caption", "")})


def drawn(build):
    """A figure module's drawing function, (data, out, name) -> None: its `build(data, name)`, saved."""
    def draw(data, out: Path, name: str) -> None:
        save(build(data, name), data, out, name)
    return draw


def _bounds(figures) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = np.array([np.nan if f is None else f.value for f in figures], float)
    low = np.array([np.nan if f is None or f.ci is None else f.ci[0] for f in figures], float)
    high = np.array([np.nan if f is None or f.ci is None else f.ci[1] for f in figures], float)
    return values, low, high


def errorbars(ax, xs, figures, **style):
    """Points at each Figure's value with its interval as an error bar (none where it has no interval)."""
    values, low, high = _bounds(figures)
    yerr = np.vstack([np.nan_to_num(values - low), np.nan_to_num(high - values)])
    return ax.errorbar(list(xs), values, yerr=yerr, capsize=3, **style)


def curve_with_band(ax, xs, figures, label: str, color=None, band_alpha: float = 0.2, **style):
    """A line through each Figure's value and a translucent band of their intervals."""
    values, low, high = _bounds(figures)
    (line,) = ax.plot(list(xs), values, label=label, color=color, **style)
    if np.isfinite(low).any():
        ax.fill_between(list(xs), low, high, color=line.get_color(), alpha=band_alpha, linewidth=0)
    return line


def note(ax, text: str) -> None:
    """A caveat inside an empty or degenerate panel, boxed, at the top so that no data point hides it."""
    ax.text(0.5, 0.97, text, transform=ax.transAxes, ha="center", va="top", fontsize=8, wrap=True,
            bbox={"boxstyle": "round", "facecolor": "lightyellow", "edgecolor": "0.6", "alpha": 0.95})


def legend_outside(plots, *axes, ncols: int = 3) -> None:
    """One legend for `axes` below the plots (matplotlib's 'outside' placement), where it cannot hide
    data, titles or the caption; labels repeated across panels are shown once."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        plots.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=ncols, fontsize=8,
                     frameon=False)
