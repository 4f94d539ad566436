"""Figure 5 (right): FLUX.1-schnell's ID_sim against guidance_scale, with the paper's flat value; beside it,
the structural check every profile can make: the images' pixel mean per guidance (bitwise equal images)."""

from __future__ import annotations

from idrift.claims import GUIDANCE_SCALES
from idrift.report.captions import caption, interval_text, per_point, profile_caveat
from idrift.report.data import MissingData, RunData, identity_figure
from idrift.report.plot import PAPER_COLOR, SCHNELL_COLOR, errorbars, legend_outside, new_figure

NAME = "figure5_guidance.png"
CLAIM = "figure5_guidance"


def _caption(data: RunData, n: int) -> str:
    caveat = profile_caveat(data.profile, ("id_sim",), data.faceless(CLAIM))
    varying = data.figure(CLAIM, "samples_varying_with_guidance")
    exact = "" if varying is None else (
        f"Measured on every profile: {varying:g} of the samples change with guidance_scale (bitwise image digests)")
    spread = data.interval(CLAIM, "id_sim_range")
    finding = "" if caveat or spread is None else f"Largest ID_sim range across guidance: {spread.text(3)}"
    return caption(
        "Figure 5, right (paper Figure 5 right): guidance-scale insensitivity of FLUX.1-schnell, 4 steps. "
        "Left: mean ID_sim per guidance_scale; red dashed: the paper's constant 0.591. Right: mean pixel value "
        "of the same images",
        per_point(data, CLAIM, n),
        interval_text(), exact, caveat, finding)


def build(data: RunData, name: str = NAME):
    data.require(CLAIM)
    arms = {g: f"schnell-4-g{g:g}" for g in GUIDANCE_SCALES}
    id_sim = {g: f for g, a in arms.items() if (f := identity_figure(data.arm_samples(CLAIM, a, "id_sim")))}
    pixels = {g: f for g, a in arms.items() if (f := identity_figure(data.arm_samples(CLAIM, a, "pixel_mean")))}
    if not id_sim and not pixels:
        raise MissingData(f"{CLAIM} has no per-guidance samples (every sample failed?)")
    n = max((f.n or 0 for f in id_sim.values()), default=0)
    fig, plots, axes = new_figure(name, _caption(data, n), 1, 2)
    left, right = axes[0]
    if id_sim:
        errorbars(left, list(id_sim), list(id_sim.values()), fmt="o-", color=SCHNELL_COLOR,
                  label="FLUX.1-schnell 4 steps (run)")
    paper = data.paper_value(CLAIM, "id_sim_mean")
    if paper is not None:
        left.axhline(paper, color=PAPER_COLOR, linestyle="--", label=f"paper: {paper:g} at every scale")
    left.set(xlabel="guidance_scale", ylabel="mean ID_sim", title="ID_sim vs guidance_scale")
    if pixels:
        errorbars(right, list(pixels), list(pixels.values()), fmt="o-", color="tab:green",
                  label="mean pixel value (run)")
    right.set(xlabel="guidance_scale", ylabel="mean pixel value (0-255)",
              title="Images vs guidance_scale (structural check)")
    legend_outside(plots, left, right, ncols=3)
    return fig
