"""The report of a run: the paper's Tables 1-2 and Figures 2-7, with the paper's numbers beside the run's.

    >>> from idrift.commands.run import load_run
    >>> from idrift.report import write_report
    >>> report = write_report(load_run("runs/ci"), "runs/ci/report")    # doctest: +SKIP
    >>> report.missing                                                 # doctest: +SKIP
    {'figure5_drift.png': 'the run has no figure5_drift claim: ...'}

Writes `report.md` and one PNG per figure into the output folder. Every figure is drawn from what
the run holds: figures (results re-evaluated from the store) and per-sample values (store records).
A figure whose data the run lacks is listed under "Missing" in report.md with the command that
produces it, never dropped silently. The paper's numbers come from baselines/paper.json and are
overlaid where the paper states them. Where no generated image has a face (random weights: tiny,
synthetic), every ID_sim is 0 by the aggregation rule; the figures still render and say so.

Each PNG carries the run's provenance in its text chunks (PNG tEXt "idrift:provenance"), and
report.md ends with the full provenance, so every number shown says where it came from.

Plots use matplotlib's object API on the Agg canvas (no pyplot state, no display needed). Sizes are
fixed (`FIGURE_SIZES` at `DPI`; the grid's by `grid_size`), so a figure's pixel size is known.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from idrift.baselines.io import baselines_dir
from idrift.claims import ALPHAS, CLAIMS_BY_ID, DEV_28, GUIDANCE_SCALES, SCHNELL_4

# In the checkout's baselines/ or an installed wheel's copy; not from idrift.session, which pulls in torch.
PAPER_BASELINE = baselines_dir() / "paper.json"

DPI = 100
FIGURE_SIZES = {  # inches at DPI; file name -> (width, height)
    "figure3_per_identity.png": (7.0, 6.0),
    "figure5_drift.png": (8.0, 5.0),
    "figure4_alpha.png": (8.0, 5.0),
    "figure5_guidance.png": (10.0, 4.5),
    "figures6_7_drift_by_tier.png": (8.0, 5.0),
    "figures6_7_heatmap.png": (9.0, 5.0),
}
GRID_FILE = "figure2_grid.png"
PANEL = 160  # px per image in the grid
LABEL_H = 34  # px of the column-label band
PAD = 4  # px between panels
GRID_MAX_IDENTITIES = 4
BACKGROUND = (255, 255, 255)
NO_FACE_NOTE = "no generated image has a face: every ID_sim is 0 by the aggregation rule (random weights)"

# Claims whose samples include the dev-28 and schnell-4 arms on the eval prompts (Table 1 samples).
SWAP_CLAIMS = ("table1_backbone_swap", "figure3_per_identity", "table2_id_sim_by_prompt")
EVAL_PROMPTS = ("portrait", "beach", "suit")


class MissingData(Exception):
    """A figure cannot be drawn from this run; the message says why and how to get the data."""


@dataclass
class Report:
    out: Path
    written: list[str] = field(default_factory=list)  # file names, in report order
    missing: dict[str, str] = field(default_factory=dict)  # file or table -> why


def _hint(run, claim_id: str) -> str:
    return (f"the run has no {claim_id} claim: `idrift run --profile {run.profile} --tier {run.tier} "
            f"--claims {claim_id} --out {run.path}` adds it")


# ------------------------------------------------------------------------------------------- data access


class RunData:
    """What the figures read: re-evaluated figures, store records, the paper's numbers."""

    def __init__(self, run, paper):
        self.run = run
        self.paper = paper
        self.results = run.results()
        self._records: dict[str, list[dict] | None] = {}

    def has(self, claim_id: str) -> bool:
        return claim_id in self.results

    def figures(self, claim_id: str) -> dict[str, float]:
        return self.results[claim_id].figures if claim_id in self.results else {}

    def figure(self, claim_id: str, metric: str) -> float | None:
        return self.figures(claim_id).get(metric)

    def records(self, claim_id: str) -> list[dict]:
        if claim_id not in self.results:
            raise MissingData(_hint(self.run, claim_id))
        if claim_id not in self._records:
            self._records[claim_id] = self.run.records(claim_id)
        records = self._records[claim_id]
        if records is None:
            raise MissingData(f"the store {self.run.store_path} lacks the samples of {claim_id} "
                              f"(rerun `idrift run --claims {claim_id} --out {self.run.path}`)")
        return records

    def table(self, claim_id: str):
        from idrift.evaluate import Table

        return Table(CLAIMS_BY_ID[claim_id], self.records(claim_id), self.run.aggregation)

    def paper_value(self, claim_id: str, metric: str) -> float | None:
        claim = self.paper.claims.get(claim_id)
        entry = claim.metrics.get(metric) if claim is not None else None
        return None if entry is None else float(entry.aggregate)

    def faceless(self, *claim_ids: str) -> bool:
        """True when ID_sim was measured on these claims and no generated image had a face. From the
        detection rates where the claim reports them, else from its samples."""
        detected: list[float] = []
        for claim_id in claim_ids:
            rates = [v for k, v in self.figures(claim_id).items() if k.startswith("detection_rate[")]
            if rates or claim_id not in self.results:
                detected += rates
                continue
            try:
                records = self.records(claim_id)
            except MissingData:
                continue
            detected += [float(r["metrics"]["id_sim"].get("id_sim") is not None)
                         for r in records if "id_sim" in r.get("metrics", {})]
        return bool(detected) and max(detected) == 0.0

    def provenance_text(self) -> str:
        prov = self.run.provenance
        weights = ", ".join(f"{k}={v}" for k, v in sorted((prov.get("weights") or {}).items()))
        return (f"run {self.run.path}; command {self.run.doc['command']}; profile {prov.get('profile')}; "
                f"tier {prov.get('tier')}; gpu {prov.get('gpu') or 'none'}; device {prov.get('device')}; "
                f"aggregation {prov.get('aggregation')}; weights {weights or 'not recorded'}")


def _mean(values) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


# --------------------------------------------------------------------------------------------- drawing


def _figure(name: str, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGURE_SIZES[name], dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def _save(fig, data: RunData, out: Path, name: str) -> None:
    # Fixed size (no bbox_inches="tight"): the pixel size is FIGURE_SIZES[name] x DPI.
    fig.savefig(out / name, dpi=DPI, format="png",
                metadata={"Software": "idrift", "Title": name, "Description": data.provenance_text()})


def _note(ax, text: str) -> None:
    """A caveat in the middle of the plot, boxed, so that it cannot be missed or hidden by a legend."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=8, wrap=True,
            bbox={"boxstyle": "round", "facecolor": "lightyellow", "edgecolor": "0.6", "alpha": 0.9})


def figure3_per_identity(data: RunData, out: Path, name: str) -> None:
    """Per-identity mean ID_sim, schnell-4 against dev-28, with the per-prompt means (paper Figure 3)."""
    claim_id = next((c for c in SWAP_CLAIMS if data.has(c)), None)
    if claim_id is None:
        raise MissingData(_hint(data.run, "table1_backbone_swap"))
    table = data.table(claim_id)
    dev, schnell = table.values(DEV_28.name, "id_sim"), table.values(SCHNELL_4.name, "id_sim")
    keys = sorted(dev.keys() & schnell.keys())
    if not keys:
        raise MissingData(f"{claim_id} holds no paired dev-28 / schnell-4 ID_sim samples")
    by_identity, by_prompt = defaultdict(list), defaultdict(list)
    for key in keys:
        identity, prompt, _ = key.split("|")
        by_identity[identity].append((dev[key], schnell[key]))
        by_prompt[prompt].append((dev[key], schnell[key]))
    fig, ax = _figure(name)
    xs = [np.mean([d for d, _ in pairs]) for pairs in by_identity.values()]
    ys = [np.mean([s for _, s in pairs]) for pairs in by_identity.values()]
    ax.scatter(xs, ys, s=30, alpha=0.7, label=f"identities of this run (n={len(xs)})")
    markers = dict(zip(EVAL_PROMPTS, ("D", "s", "^")))
    points = xs + ys
    for prompt, pairs in sorted(by_prompt.items()):
        x, y = np.mean([d for d, _ in pairs]), np.mean([s for _, s in pairs])
        ax.scatter([x], [y], marker=markers.get(prompt, "o"), s=90, edgecolor="black", label=f"run mean: {prompt}")
        points += [x, y]
    for prompt in EVAL_PROMPTS:
        x = data.paper_value("table2_id_sim_by_prompt", f"id_sim[dev-28|{prompt}]")
        y = data.paper_value("table2_id_sim_by_prompt", f"id_sim[schnell-4|{prompt}]")
        if x is not None and y is not None:
            ax.scatter([x], [y], marker=markers[prompt], s=90, facecolor="none", edgecolor="red",
                       label=f"paper mean: {prompt}")
            points += [x, y]
    lo, hi = min(points) - 0.05, max(points) + 0.05
    ax.plot([lo, hi], [lo, hi], color="0.5", linestyle="--", linewidth=1, label="schnell-4 = dev-28")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="ID_sim, FLUX.1-dev 28 steps",
           ylabel="ID_sim, FLUX.1-schnell 4 steps",
           title="Figure 3: per-identity ID_sim, mean over prompts")
    ax.text(0.98, 0.02, f"samples of {claim_id}", transform=ax.transAxes, ha="right", fontsize=7, color="0.4")
    fraction = data.figure("figure3_per_identity", "fraction_schnell_ge_dev")
    if fraction is not None:
        ax.text(0.02, 0.98, f"schnell-4 >= dev-28 for {fraction:.0%} of identities", transform=ax.transAxes,
                va="top", fontsize=9)
    if data.faceless(claim_id):
        _note(ax, NO_FACE_NOTE)
    ax.legend(fontsize=7, loc="center right")
    _save(fig, data, out, name)


def _steps_curve(figures: dict[str, float], suffix: str = "") -> dict[int, float]:
    from idrift.claims import DRIFT_STEPS

    return {s: figures[f"id_sim[dev-{s}{suffix}]"] for s in DRIFT_STEPS if f"id_sim[dev-{s}{suffix}]" in figures}


def figure5_drift(data: RunData, out: Path, name: str) -> None:
    """ID_sim of FLUX.1-dev against the step budget: separate runs and one trajectory (paper Figure 5 left)."""
    if not data.has("figure5_drift"):
        raise MissingData(_hint(data.run, "figure5_drift"))
    figures = data.figures("figure5_drift")
    budget, trajectory = _steps_curve(figures), _steps_curve(figures, "-traj")
    if not budget and not trajectory:
        raise MissingData("figure5_drift has no per-step ID_sim figures (every sample failed?)")
    fig, ax = _figure(name)
    for curve, label, style in ((budget, "budget: one run per step count", "o-"),
                                (trajectory, "trajectory: x0 of one 28-step run", "s--")):
        if curve:
            ax.plot(list(curve), list(curve.values()), style, label=label)
    peak_step = data.paper_value("figure5_drift", "peak_step")
    at_peak, at_28 = data.paper_value("figure5_drift", "id_sim_at_peak"), data.paper_value("figure5_drift", "id_sim_at_28")
    if None not in (peak_step, at_peak, at_28):
        ax.plot([peak_step, 28], [at_peak, at_28], "x", color="red", markersize=10, mew=2,
                label=f"paper: peak {at_peak:g} at {peak_step:g} steps, {at_28:g} at 28")
    drop = figures.get("drop")
    ax.set(xlabel="denoising steps", ylabel="mean ID_sim",
           title="Figure 5 (left): identity drift of FLUX.1-dev"
                 + (f" - run drop {drop:.3f}" if drop is not None else ""))
    if data.faceless("figure5_drift"):
        _note(ax, NO_FACE_NOTE)
    ax.legend(fontsize=8)
    _save(fig, data, out, name)


def figure4_alpha(data: RunData, out: Path, name: str) -> None:
    """One ID_sim-over-steps curve per InfuseNet scale alpha (paper Figure 4)."""
    table = data.table("figure4_alpha")
    claim = CLAIMS_BY_ID["figure4_alpha"]
    figures = data.figures("figure4_alpha")
    fig, ax = _figure(name)
    drawn = 0
    for alpha in ALPHAS:
        arms = [a for a in claim.arms if a.alpha == alpha]
        curve = {a.steps: m for a in arms if (m := _mean(table.values(a.name, "id_sim").values())) is not None}
        if curve:
            drift = figures.get(f"drift[a{alpha:g}]")
            ax.plot(list(curve), list(curve.values()), "o-", markersize=3,
                    label=f"alpha {alpha:g}" + (f" (drift {drift:.3f})" if drift is not None else ""))
            drawn += 1
    if not drawn:
        raise MissingData("figure4_alpha holds no ID_sim samples")
    low, high = data.paper_value("figure4_alpha", "min_drift"), data.paper_value("figure4_alpha", "max_drift")
    peak = data.paper_value("figure4_alpha", "max_peak_step")
    if peak is not None:
        ax.axvline(peak, color="red", linestyle=":", label=f"paper: every alpha peaks at {peak:g} steps")
    if low is not None and high is not None:
        ax.text(0.98, 0.98, f"paper: drift {low:g}-{high:g} across alphas", transform=ax.transAxes,
                ha="right", va="top", fontsize=9, color="red")
    ax.set(xlabel="denoising steps (trajectory mode)", ylabel="mean ID_sim",
           title="Figure 4: identity drift for every conditioning scale alpha")
    if data.faceless("figure4_alpha"):
        _note(ax, NO_FACE_NOTE)
    ax.legend(fontsize=7, ncols=2)
    _save(fig, data, out, name)


def figure5_guidance(data: RunData, out: Path, name: str) -> None:
    """schnell-4 ID_sim (and, as its exact structural check, the pixel mean) against guidance_scale."""
    if not data.has("figure5_guidance"):
        raise MissingData(_hint(data.run, "figure5_guidance"))
    figures = data.figures("figure5_guidance")
    names = {g: f"schnell-4-g{g:g}" for g in GUIDANCE_SCALES}
    id_sim = {g: figures[f"id_sim[{n}]"] for g, n in names.items() if f"id_sim[{n}]" in figures}
    pixels = {g: figures[f"pixel_mean[{n}]"] for g, n in names.items() if f"pixel_mean[{n}]" in figures}
    if not id_sim and not pixels:
        raise MissingData("figure5_guidance has no per-guidance figures (every sample failed?)")
    fig, (left, right) = _figure(name, ncols=2)
    if id_sim:
        left.plot(list(id_sim), list(id_sim.values()), "o-", label="run")
    paper = data.paper_value("figure5_guidance", "id_sim_mean")
    if paper is not None:
        left.axhline(paper, color="red", linestyle="--", label=f"paper: flat at {paper:g}")
    left.set(xlabel="guidance_scale", ylabel="mean ID_sim", title="ID_sim of FLUX.1-schnell, 4 steps")
    if data.faceless("figure5_guidance"):
        _note(left, "no generated image has a face:\nID_sim is 0 by the aggregation rule")
    left.legend(fontsize=8)
    if pixels:
        right.plot(list(pixels), list(pixels.values()), "o-", color="tab:green")
    varying = figures.get("samples_varying_with_guidance")
    right.set(xlabel="guidance_scale", ylabel="mean pixel value (0-255)",
              title="Images: " + ("not measured" if varying is None else
                                  f"{varying:g} samples vary with guidance"))
    fig.suptitle("Figure 5 (right): FLUX.1-schnell ignores guidance_scale")
    _save(fig, data, out, name)


def _tiers(claim_id: str) -> dict[str, int]:
    from idrift.data.prompts import load_prompt_set

    return {p.id: p.tier for p in load_prompt_set(CLAIMS_BY_ID[claim_id].samples.prompt_set).prompts}


def figures6_7_drift_by_tier(data: RunData, out: Path, name: str) -> None:
    """Drift per prompt tier, dev against schnell (paper Figure 7)."""
    claim_id = "figures6_7_prompt_complexity"
    if not data.has(claim_id):
        raise MissingData(_hint(data.run, claim_id))
    figures = data.figures(claim_id)
    tiers = [p for p, _ in sorted(_tiers(claim_id).items(), key=lambda item: item[1])]
    tiers = [p for p in tiers if f"drift[{p}]" in figures or f"schnell_drift[{p}]" in figures]
    if not tiers:
        raise MissingData(f"{claim_id} has no per-tier drift figures (every sample failed?)")
    fig, ax = _figure(name)
    x = np.arange(len(tiers))
    ax.bar(x - 0.2, [figures.get(f"drift[{p}]", np.nan) for p in tiers], 0.4, label="FLUX.1-dev (28 steps)")
    ax.bar(x + 0.2, [figures.get(f"schnell_drift[{p}]", np.nan) for p in tiers], 0.4, label="FLUX.1-schnell (4 steps)")
    for prompt in ("minimal", "style"):
        value = data.paper_value(claim_id, f"drift[{prompt}]")
        if value is not None and prompt in tiers:
            ax.plot([tiers.index(prompt) - 0.2], [value], "x", color="red", markersize=10, mew=2)
            ax.annotate(f"paper {value:g}", (tiers.index(prompt) - 0.2, value), textcoords="offset points",
                        xytext=(5, 5), fontsize=8, color="red")
    schnell_max = data.paper_value(claim_id, "schnell_drift_max")
    if schnell_max is not None:
        ax.axhline(schnell_max, color="red", linestyle=":", label=f"paper: schnell drift <= {schnell_max:g}")
    ax.set_xticks(x, tiers, rotation=20, fontsize=8)
    rho = figures.get("tier_drift_spearman")
    ax.set(ylabel="drift (peak minus last step)",
           title="Figures 6-7: drift by prompt complexity" + (f" - Spearman {rho:.2f}" if rho is not None else ""))
    if data.faceless(claim_id):
        _note(ax, NO_FACE_NOTE)
    ax.legend(fontsize=8)
    _save(fig, data, out, name)


def figures6_7_heatmap(data: RunData, out: Path, name: str) -> None:
    """Mean ID_sim of FLUX.1-dev over steps x prompt tier (paper Figure 6)."""
    claim_id = "figures6_7_prompt_complexity"
    table = data.table(claim_id)
    dev_arms = sorted((a for a in CLAIMS_BY_ID[claim_id].arms if a.backbone == "dev"), key=lambda a: a.steps)
    tiers = [p for p, _ in sorted(_tiers(claim_id).items(), key=lambda item: item[1])]
    grid = np.full((len(tiers), len(dev_arms)), np.nan)  # mean over the identities of each cell
    for i, prompt in enumerate(tiers):
        for j, arm in enumerate(dev_arms):
            values = [v for k, v in table.values(arm.name, "id_sim").items() if k.split("|")[1] == prompt]
            grid[i, j] = np.mean(values) if values else np.nan
    present = ~np.all(np.isnan(grid), axis=1)
    if not present.any():
        raise MissingData(f"{claim_id} holds no dev ID_sim samples")
    grid, tiers = grid[present], [t for t, keep in zip(tiers, present) if keep]
    fig, ax = _figure(name)
    image = ax.imshow(grid, aspect="auto", cmap="viridis")
    fig.colorbar(image, ax=ax, label="mean ID_sim")
    ax.set_xticks(range(len(dev_arms)), [str(a.steps) for a in dev_arms])
    ax.set_yticks(range(len(tiers)), tiers, fontsize=8)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if not math.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white")
    columns = [j for j, arm in enumerate(dev_arms) if 4 <= arm.steps <= 8]
    if columns:  # the paper: the map peaks at steps 4-8
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((columns[0] - 0.5, -0.5), len(columns), grid.shape[0], fill=False,
                               edgecolor="red", linestyle="--", linewidth=2, label="paper: peak at steps 4-8"))
        ax.legend(fontsize=8, loc="upper right")
    ax.set(xlabel="denoising steps (trajectory mode)", ylabel="prompt tier (minimal to style)",
           title="Figure 6: mean ID_sim of FLUX.1-dev over steps x prompt complexity")
    if data.faceless(claim_id):
        _note(ax, NO_FACE_NOTE)
    _save(fig, data, out, name)


def grid_size(rows: int, cols: int) -> tuple[int, int]:
    """Pixel (width, height) of an image grid of rows x cols panels."""
    return cols * PANEL + (cols + 1) * PAD, LABEL_H + rows * PANEL + (rows + 1) * PAD


def figure2_grid(data: RunData, out: Path, name: str) -> None:
    """Reference, then dev-28 and schnell-4 for each prompt, one row per identity (paper Figure 2)."""
    from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

    claim_id = next((c for c in SWAP_CLAIMS if data.has(c)), None)
    if claim_id is None:
        raise MissingData(_hint(data.run, "table1_backbone_swap"))
    records = data.records(claim_id)
    keys = dict(zip((_spec_label(r["spec"]) for r in records), data.run.doc["claims"][claim_id]["spec_keys"]))
    identities = list(dict.fromkeys(r["spec"]["identity"] for r in records))[:GRID_MAX_IDENTITIES]
    prompts = list(dict.fromkeys(r["spec"]["prompt_id"] for r in records))
    columns = [("reference", None, None)] + [(f"{p}\n{arm.name}", p, arm) for p in prompts for arm in (DEV_28, SCHNELL_4)]
    references = _reference_images(data.run)
    width, height = grid_size(len(identities), len(columns))
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    store = data.run.open_store()
    try:
        for c, (label, prompt, arm) in enumerate(columns):
            x = PAD + c * (PANEL + PAD)
            draw.multiline_text((x + 2, 2), label, fill=(0, 0, 0), font=font, spacing=2)
            for r, identity in enumerate(identities):
                y = LABEL_H + PAD + r * (PANEL + PAD)
                if arm is None:
                    panel = references.get(identity)
                else:
                    key = keys.get((arm.backbone, arm.steps, identity, prompt))
                    record = store.get(key) if key and store is not None else None
                    panel = record.load_image() if record is not None and record.ok else None
                if panel is None:
                    panel = Image.new("RGB", (PANEL, PANEL), (200, 200, 200))
                    ImageDraw.Draw(panel).text((8, PANEL // 2), "not available", fill=(0, 0, 0), font=font)
                canvas.paste(panel.convert("RGB").resize((PANEL, PANEL), Image.Resampling.LANCZOS), (x, y))
                if c == 0:
                    draw.rectangle((x, y + PANEL - 14, x + PANEL - 1, y + PANEL - 1), fill=(0, 0, 0))
                    draw.text((x + 3, y + PANEL - 13), identity, fill=(255, 255, 255), font=font)
    finally:
        if store is not None:
            store.close()
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "idrift")
    info.add_text("Description", data.provenance_text())
    canvas.save(out / name, format="PNG", pnginfo=info)


def _spec_label(spec: dict) -> tuple:
    return spec["backbone"], spec["steps"], spec["identity"], spec["prompt_id"]


def _reference_images(run) -> dict:
    """identity -> PIL image of its reference photo, from the run's identity manifest (none on synthetic)."""
    from PIL import Image

    manifest_path = run.doc["options"].get("identities")
    if not manifest_path or not Path(manifest_path).is_file():
        return {}
    from idrift.data.identities import load_manifest

    manifest = load_manifest(manifest_path, verify=False)
    out = {}
    for entry in manifest.entries:
        path = manifest.image_file(entry)
        if path.is_file():
            with Image.open(path) as image:
                out[entry.identity_id] = image.convert("RGB")
    return out


FIGURES = (  # (file, what it shows, drawing function), in report order
    (GRID_FILE, "Figure 2: reference and outputs per backbone and prompt", figure2_grid),
    ("figure3_per_identity.png", "Figure 3: per-identity ID_sim, schnell-4 against dev-28", figure3_per_identity),
    ("figure4_alpha.png", "Figure 4: drift for every alpha", figure4_alpha),
    ("figure5_drift.png", "Figure 5 (left): drift over the step budget, budget and trajectory modes", figure5_drift),
    ("figure5_guidance.png", "Figure 5 (right): guidance flatness of FLUX.1-schnell", figure5_guidance),
    ("figures6_7_drift_by_tier.png", "Figure 7: drift per prompt tier", figures6_7_drift_by_tier),
    ("figures6_7_heatmap.png", "Figure 6: steps x prompt-tier heatmap", figures6_7_heatmap),
)


# ---------------------------------------------------------------------------------------------- tables


def _cell(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _signed(value) -> str:
    return "-" if value is None else f"{value:+.4g}"


def table1(data: RunData) -> list[str]:
    """Paper Table 1 with the run's numbers beside the paper's."""
    swap, dev4, lat = "table1_backbone_swap", "table1_dev4_diagnostic", "latency"
    p = data.paper_value
    f = data.figure

    def n(claim_id: str, metric: str) -> str:
        result = data.results.get(claim_id)
        samples = result.samples.get(metric) if result is not None else None
        return f" (n={len(samples)})" if samples else ""

    rows = [
        ("FLUX.1-dev, 28 steps", p(swap, "id_sim[dev-28]"), f(swap, "id_sim[dev-28]"), p(swap, "lpips[dev-28]"),
         f(swap, "lpips[dev-28]"), p(lat, "latency_s[dev-28]"), f(lat, "latency_s[dev-28]"), n(swap, "id_sim[dev-28]")),
        ("FLUX.1-schnell, 4 steps", p(swap, "id_sim[schnell-4]"), f(swap, "id_sim[schnell-4]"),
         p(swap, "lpips[schnell-4]"), f(swap, "lpips[schnell-4]"), p(lat, "latency_s[schnell-4]"),
         f(lat, "latency_s[schnell-4]"), n(swap, "id_sim[schnell-4]")),
        ("FLUX.1-dev, 4 steps (diagnostic)", p(dev4, "id_sim[dev-4]"), f(dev4, "id_sim[dev-4]"), None, None,
         p(lat, "latency_s[dev-4]"), None, n(dev4, "id_sim[dev-4]")),
    ]
    lines = ["| method | ID_sim paper | ID_sim run | LPIPS paper | LPIPS run | latency s paper | latency s run |",
             "|---|---|---|---|---|---|---|"]
    for label, *values, count in rows:
        lines.append(f"| {label}{count} | " + " | ".join(_cell(v) for v in values) + " |")
    lines.append(f"| schnell-4 minus dev-28 | {_signed(p(swap, 'id_sim_delta'))} | {_signed(f(swap, 'id_sim_delta'))} | "
                 f"{_signed(p(swap, 'lpips_delta'))} | {_signed(f(swap, 'lpips_delta'))} | "
                 f"speed-up {_cell(p(lat, 'speedup'), 3)}x | speed-up {_cell(f(lat, 'speedup'), 3)}x |")
    return lines


def table2(data: RunData) -> list[str]:
    """Paper Table 2: ID_sim per evaluation prompt."""
    claim = "table2_id_sim_by_prompt"
    p, f = data.paper_value, data.figure
    lines = ["| prompt | dev-28 paper | dev-28 run | schnell-4 paper | schnell-4 run | gain paper | gain run |",
             "|---|---|---|---|---|---|---|"]
    for prompt in EVAL_PROMPTS:
        values = [p(claim, f"id_sim[dev-28|{prompt}]"), f(claim, f"id_sim[dev-28|{prompt}]"),
                  p(claim, f"id_sim[schnell-4|{prompt}]"), f(claim, f"id_sim[schnell-4|{prompt}]")]
        lines.append(f"| {prompt} | " + " | ".join(_cell(v) for v in values)
                     + f" | {_signed(p(claim, f'delta[{prompt}]'))} | {_signed(f(claim, f'delta[{prompt}]'))} |")
    swap = "table1_backbone_swap"

    def average(table1_metric: str, table2_metric: str) -> float | None:
        # Table 1's figure where the run has it; else the mean of the per-prompt figures (equal n per prompt).
        if (value := f(swap, table1_metric)) is not None:
            return value
        return _mean(v for prompt in EVAL_PROMPTS if (v := f(claim, table2_metric.format(prompt))) is not None)

    lines.append(f"| average | {_cell(p(swap, 'id_sim[dev-28]'))} | {_cell(average('id_sim[dev-28]', 'id_sim[dev-28|{}]'))} | "
                 f"{_cell(p(swap, 'id_sim[schnell-4]'))} | {_cell(average('id_sim[schnell-4]', 'id_sim[schnell-4|{}]'))} | "
                 f"{_signed(p(swap, 'id_sim_delta'))} | {_signed(average('id_sim_delta', 'delta[{}]'))} |")
    return lines


# ---------------------------------------------------------------------------------------------- report


def _paper_session(data: RunData):
    """The run as `idrift compare RUN --baseline paper` sees it: the same session, outcomes and gate rows."""
    from idrift.commands.run import session_from_run

    return session_from_run(data.run, baseline=str(data.paper.path or PAPER_BASELINE), results=data.results)


def _claims_section(data: RunData, session) -> list[str]:
    """Each claim's word, its parts and expectations: idrift.evaluate.claim_line, as pytest, `idrift run`
    and `idrift compare` print it."""
    from idrift import verdicts
    from idrift.evaluate import claim_line

    lines = ["| claim | paper | verdict | expectations (measured, 95% CI, n) |", "|---|---|---|---|"]
    require_real = data.run.doc["options"].get("require_real", False)
    reasons: dict[str, int] = {}
    for claim in data.run.claims:
        outcomes = session.outcomes.get(claim.id, [])
        parts = []
        for o in outcomes:
            measured = "n/a" if o.measured is None else (o.figure.text() if o.figure else f"{o.measured:.4g}")
            part = f"{o.expect}: {o.status} ({measured})"
            if o.status == verdicts.NOT_JUDGEABLE:
                part += f" [{reasons.setdefault(o.reason, len(reasons) + 1)}]"
            elif o.reason:
                part += f" - {o.reason}"
            parts.append(part)
        line = claim_line(claim, outcomes, data.run.tier, require_real).split(": ", 1)[1]
        lines.append(f"| {claim.id} | {claim.paper} | {line.replace('|', '/')} | {'<br>'.join(parts).replace('|', '/')} |")
    if reasons:
        lines += [""] + [f"[{n}] not judgeable: {reason}" for reason, n in reasons.items()]
    return lines


def _paper_section(rows: list[dict], paper) -> list[str]:
    """Every number of baselines/paper.json: the run's value with its interval and n, whether the paper's
    number lies inside that interval, and the gate's word (the rows of `idrift compare --baseline paper`)."""
    lines = ["| claim | number | paper | run | run 95% CI | n (run) | paper inside | word |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] == "no baseline":
            continue
        ci = "-" if r.get("candidate_ci_low") is None else f"[{_cell(r['candidate_ci_low'])}, {_cell(r['candidate_ci_high'])}]"
        inside = {True: "yes", False: "no", None: "-"}[r.get("baseline_inside")]
        n = "-" if r.get("candidate_n") is None else str(r["candidate_n"])
        lines.append(f"| {r['claim']} | {r['metric'].replace('|', '/')} | {_cell(r['baseline'])} | {_cell(r['candidate'])} | "
                     f"{ci} | {n} | {inside} | {r['status']} |")
    measured = {r["claim"] for r in rows}
    for claim_id, claim in paper.claims.items():
        if claim_id not in measured:
            lines += [f"| {claim_id} | {metric.replace('|', '/')} | {_cell(m.aggregate)} | - | - | - | - | not in this run |"
                      for metric, m in sorted(claim.metrics.items())]
    return lines


def write_report(run, out: str | Path, paper=None) -> Report:
    """Write report.md and the figures of `run` (an idrift.commands.run.Run) into `out`."""
    from idrift.baselines.io import load_baseline

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = RunData(run, paper if paper is not None else load_baseline(PAPER_BASELINE))
    report = Report(out=out)
    for name, _, draw in FIGURES:
        try:
            draw(data, out, name)
            report.written.append(name)
        except MissingData as exc:
            report.missing[name] = str(exc)
            (out / name).unlink(missing_ok=True)  # a stale PNG from an earlier report must not pass for this run's
    for table, claim_id in (("Table 1", "table1_backbone_swap"), ("Table 2", "table2_id_sim_by_prompt")):
        if not data.has(claim_id):
            report.missing[table] = "paper numbers only: " + _hint(run, claim_id)

    doc = run.doc
    lines = [f"# idrift report: {run.path}", "",
             f"- command: `{doc['command']}`",
             f"- profile {run.profile}, tier {run.tier}, ID_sim aggregation '{run.aggregation}'",
             f"- started {doc['started']}, finished {doc.get('finished') or 'not finished'}"
             + ("" if doc.get("complete") else " (incomplete: rerun the command to resume)"),
             f"- paper numbers: {PAPER_BASELINE.name} ({data.paper.provenance.get('source', 'the paper')})"]
    if data.faceless(*data.results):
        lines += ["", (f"**Note:** {NO_FACE_NOTE}. The figures below show what this run measured "
                       "(the pipeline's plumbing and its golden values), not the paper's identity claims; "
                       "those need `--profile real`.")]
    notes = list(run.notes)
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    from idrift.commands.compare import compare_rows

    session = _paper_session(data)
    rows = compare_rows(session)
    lines += ["", "## Claims", ""] + _claims_section(data, session)
    lines += ["", "## The paper, number by number", "",
              ("Each number of baselines/paper.json beside this run's value, its 95% interval and n, whether the "
               "paper's number lies inside the interval, and the word `idrift compare RUN --baseline paper` gives it."),
              "", *_paper_section(rows, data.paper)]
    lines += ["", "## Table 1: backbone swap", "", *table1(data), "",
              ("Run values come from the claims table1_backbone_swap, table1_dev4_diagnostic and latency "
               "(\"-\": not in this run or not stated by the paper).")]
    lines += ["", "## Table 2: ID_sim per prompt", "", *table2(data)]
    lines += ["", "## Figures"]
    for name, title, _ in FIGURES:
        if name in report.written:
            lines += ["", f"### {title}", "", f"![{title}]({name})"]
    if report.missing:
        lines += ["", "## Missing", "", "What this run lacks the data for:", ""]
        lines += [f"- **{name}**: {why}" for name, why in report.missing.items()]
    lines += ["", "## Provenance", "", "Every number above comes from this run:", "", "```json",
              json.dumps(run.provenance, indent=1, sort_keys=True), "```", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return report
