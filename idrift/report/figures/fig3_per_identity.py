"""Figure 3: per-identity ID_sim of both methods, with the per-prompt means dashed (paper Figure 3)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from idrift.claims import DEV_28, SCHNELL_4
from idrift.report.captions import caption, identities, interval_text, profile_caveat, setting
from idrift.report.data import SWAP_CLAIMS, MissingData, RunData, hint
from idrift.report.plot import DEV_COLOR, SCHNELL_COLOR, errorbars, legend_outside, new_figure
from idrift.stats import CONFIDENCE, mean_figure

NAME = "figure3_per_identity.png"
PROMPT_DASHES = ((0, (5, 2)), (0, (2, 2)), (0, (8, 3, 2, 3)))


def _by_identity(samples: dict[str, float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for key, value in samples.items():
        out[key.split("|")[0]][key] = value
    return out


def _caption(data: RunData, claim_id: str, n_identities: int, n_samples: int) -> str:
    caveat = profile_caveat(data.profile, ("id_sim",), data.faceless(claim_id))
    finding = ""
    fraction = data.interval("figure3_per_identity", "fraction_schnell_ge_dev")
    if not caveat and fraction is not None:
        ci = "" if fraction.ci is None else f" ({CONFIDENCE:.0%} CI {fraction.ci[0]:.0%}-{fraction.ci[1]:.0%})"
        finding = (f"Measured: schnell-4 >= dev-28 for {fraction.value:.0%}{ci} of {n_identities} identities "
                   "(paper: virtually all)")
    return caption(
        "Figure 3 (paper Figure 3): per-identity ID_sim, mean over prompts and seeds, FLUX.1-dev 28 steps (blue) "
        "and FLUX.1-schnell 4 steps (orange); dashed: per-prompt means of each method",
        setting(data, claim_id, f"n = {identities(n_identities)}, {n_samples} paired samples per method"),
        interval_text("the prompts of each identity, (identity, prompt) clusters"), caveat, finding)


def build(data: RunData, name: str = NAME):
    claim_id = next((c for c in SWAP_CLAIMS if data.has(c)), None)
    if claim_id is None:
        raise MissingData(hint(data.run, "table1_backbone_swap"))
    dev = data.arm_samples(claim_id, DEV_28.name, "id_sim")
    schnell = data.arm_samples(claim_id, SCHNELL_4.name, "id_sim")
    keys = sorted(dev.keys() & schnell.keys())
    if not keys:
        raise MissingData(f"{claim_id} holds no paired dev-28 / schnell-4 ID_sim samples")
    dev, schnell = {k: dev[k] for k in keys}, {k: schnell[k] for k in keys}
    dev_id, schnell_id = _by_identity(dev), _by_identity(schnell)
    identities = sorted(dev_id, key=lambda i: (np.mean(list(dev_id[i].values())), i))
    fig, plots, axes = new_figure(name, _caption(data, claim_id, len(identities), len(keys)))
    ax = axes[0, 0]
    x = np.arange(len(identities))
    for offset, by_id, label, color, marker in ((-0.12, dev_id, "FLUX.1-dev, 28 steps", DEV_COLOR, "o"),
                                                (0.12, schnell_id, "FLUX.1-schnell, 4 steps", SCHNELL_COLOR, "s")):
        errorbars(ax, x + offset, [mean_figure(by_id[i]) for i in identities], fmt=marker, color=color,
                  label=label, markersize=5, linestyle="none")
    prompts = list(dict.fromkeys(k.split("|")[1] for k in keys))
    for p, prompt in enumerate(prompts):
        for samples, color, method in ((dev, DEV_COLOR, "dev-28"), (schnell, SCHNELL_COLOR, "schnell-4")):
            mean = np.mean([v for k, v in samples.items() if k.split("|")[1] == prompt])
            ax.axhline(mean, color=color, linestyle=PROMPT_DASHES[p % len(PROMPT_DASHES)], linewidth=1,
                       alpha=0.8, label=f"{method} mean, {prompt}")
    many = len(identities) > 8
    ax.set_xticks(x, identities, rotation=45 if many else 0, ha="right" if many else "center", fontsize=8)
    ax.set_xlim(-0.6, len(identities) - 0.4)
    ax.set(xlabel="identity (sorted by dev-28 ID_sim)", ylabel="ID_sim (ArcFace cosine)",
           title="Per-identity ID_sim: FLUX.1-schnell 4 steps vs FLUX.1-dev 28 steps")
    legend_outside(plots, ax, ncols=4)
    return fig
