"""Every report figure rendered from constructed records: its panels, series, labels, hatching and caption.

The records are built here (the shape idrift.run_folder.Run.records returns) and evaluated by the real
idrift.evaluate, so the figures read the same ClaimResults and intervals as on a run. Two profiles: `real`
with identity values that have a shape (a dev curve peaking at 4 steps), and `tiny` with faceless images
(every ID_sim 0), where no caption may read a finding off the data.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from idrift.baselines.io import load_baseline
from idrift.claims import CLAIMS_BY_ID, DRIFT_STEPS, Arm, Claim, Samples
from idrift.evaluate import ClaimResult, evaluate
from idrift.report import DPI, FIGURE_SIZES, GRID_FILE, Report, grid_size
from idrift.report import _draw_figures as draw_figures
from idrift.report.captions import BEYOND_PAPER, TIER_NOTE
from idrift.report.data import PAPER_BASELINE, TEXT_IDENTITY, RunData
from idrift.report.figures import (
    fig2_grid,
    fig3_per_identity,
    fig4_alpha,
    fig5_guidance,
    fig5_steps,
    fig6_tiers,
    fig7_drift,
    text_identity,
)
from idrift.report.tables import caveat_notes, table1, table2
from idrift.stats import median_figure, ratio_figure

IDENTITIES = ("ada", "bo", "cy", "di")
EVAL = ("portrait", "beach", "suit")
TIERS = ("minimal", "scene", "attire", "expression_lighting", "appearance", "style")
TEXT_CLAIM = Claim(id=TEXT_IDENTITY, family="text_identity", title="text-identity competition", paper="beyond",
                   protocol="dev-N x prompt tiers", arms=tuple(Arm("dev", n) for n in (4, 8, 12, 16, 20, 24, 28)),
                   samples=Samples(prompt_set="complexity_v1"), summary="latency", expectations=(),
                   metrics=("id_sim", "clip_t"))


def _curve(steps: int, backbone: str, tier: int = 0) -> float:
    """A dev curve that peaks at 4 steps and drifts more for later tiers; schnell flat and high."""
    if backbone == "schnell":
        return 0.62
    return 0.61 - 0.004 * abs(np.log2(steps / 4)) * (1 + tier) - (0.05 if steps < 4 else 0.0)


def _record(arm: Arm, identity: int, prompt: str, faceless: bool, tier: int = 0, clip_t: bool = False) -> dict:
    value = _curve(arm.steps, arm.backbone, tier) + 0.01 * identity + 0.002 * (arm.alpha - 1)
    metrics = {"id_sim": {"id_sim": None if faceless else value}, "lpips": {"lpips": 0.7 - 0.01 * identity},
               "pixels": {"pixel_mean": 100.0 + identity, "sha256": f"{identity}{prompt}"}}
    if clip_t:
        metrics["clip_t"] = {"clip_t": 0.2 + 0.002 * arm.steps * (1 + tier) / 10 + 0.001 * identity}
    spec = {**arm.spec_fields(), "identity": IDENTITIES[identity], "prompt_id": prompt, "seed": 0,
            "width": 64, "height": 64}  # the arm's fields as idrift.runner.specs_for writes them
    return {"spec": spec, "status": "ok", "metrics": metrics}


def _records(claim: Claim, faceless: bool) -> list[dict]:
    prompts = TIERS if claim.samples.prompt_set == "complexity_v1" else EVAL
    return [_record(arm, i, p, faceless, t, clip_t=claim.id == TEXT_IDENTITY) for arm in claim.arms
            for i in range(len(IDENTITIES)) for t, p in enumerate(prompts)]


class ConstructedRun:
    """What RunData reads of an idrift.run_folder.Run, over constructed records (no store, no images)."""

    def __init__(self, profile: str, claims: list[Claim], faceless: bool):
        self.path, self.profile, self.tier, self.aggregation = "runs/constructed", profile, "smoke", "zero"
        self.store_path, self.notes = "runs/constructed/store", []
        self._records = {c.id: _records(c, faceless) for c in claims if c.id != "latency"}
        self.doc = {"command": "constructed", "options": {"identities": None},
                    "claims": {c: {"spec_keys": [f"k{i}" for i in range(len(r))]} for c, r in self._records.items()}}
        self.provenance = {"profile": profile, "tier": "smoke", "aggregation": "zero"}
        self.claims = claims

    def records(self, claim_id):
        return self._records[claim_id]

    def open_store(self):
        return None

    def results(self):
        out = {}
        for claim in self.claims:
            if claim.id == "latency":
                rounds = {"dev-28": [10.2, 10.3, 10.4], "schnell-4": [1.7, 1.72, 1.75], "dev-4": [1.7, 1.74, 1.8]}
                result = ClaimResult(claim=claim)
                for arm, seconds in rounds.items():
                    result.intervals[f"latency_s[{arm}]"] = median_figure(seconds)
                    result.figures[f"latency_s[{arm}]"] = float(np.median(seconds))
                result.intervals["speedup"] = ratio_figure(rounds["dev-28"], rounds["schnell-4"])
                result.figures["speedup"] = result.intervals["speedup"].value
            elif claim.id == TEXT_IDENTITY:
                result = ClaimResult(claim=claim)
            else:
                result = evaluate(claim, self._records[claim.id], self.aggregation)
            out[claim.id] = result
        return out


ALL = [CLAIMS_BY_ID[c] for c in ("table1_backbone_swap", "table1_dev4_diagnostic", "table2_id_sim_by_prompt",
                                 "figure3_per_identity", "figure5_drift", "figure5_guidance", "figure4_alpha",
                                 "figures6_7_prompt_complexity", "latency")] + [TEXT_CLAIM]


@pytest.fixture(scope="module")
def real():
    return RunData(ConstructedRun("real", ALL, faceless=False), load_baseline(PAPER_BASELINE))


@pytest.fixture(scope="module")
def tiny():
    return RunData(ConstructedRun("tiny", ALL, faceless=True), load_baseline(PAPER_BASELINE))


def _caption(fig) -> str:
    return fig.idrift_caption


def _labels(*axes) -> set[str]:
    return {label for ax in axes for label in ax.get_legend_handles_labels()[1]}


def _plot_axes(fig):
    return [ax for ax in fig.get_axes() if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_figure3_both_methods_per_identity_and_dashed_prompt_means(real, tiny):
    fig = fig3_per_identity.build(real)
    (ax,) = _plot_axes(fig)
    labels = _labels(ax)
    assert {"FLUX.1-dev, 28 steps", "FLUX.1-schnell, 4 steps"} <= labels
    dashed = [line for line in ax.get_lines() if line.get_label().endswith(EVAL) and line.get_linestyle() != "-"]
    assert len(dashed) == 2 * len(EVAL)  # one per prompt and method
    assert [t.get_text() for t in ax.get_xticklabels()] == list(IDENTITIES)  # sorted by dev-28 ID_sim
    assert len(ax.containers) == 2  # error bars of both methods
    assert "n = 4 identities" in _caption(fig) and "schnell-4 >= dev-28 for 100%" in _caption(fig)  # real
    caption = _caption(fig3_per_identity.build(tiny))
    assert "Profile tiny" in caption and "say nothing" in caption and ">= dev-28 for" not in caption


def test_figure4_curves_per_alpha_and_drift_bars(real):
    fig = fig4_alpha.build(real)
    left, right = _plot_axes(fig)
    assert {f"alpha {a:g}" for a in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)} <= _labels(left)
    assert len(left.collections) == 6  # a band per alpha
    assert len(right.patches) >= 6 and right.get_ylabel().startswith("drift")
    assert any("paper: drift 0.021-0.118" in label for label in _labels(right))
    assert "Right: drift magnitude" in _caption(fig)


def test_figure5_steps_has_schnell_point_and_guidance_has_paper_value(real, tiny):
    fig = fig5_steps.build(real)
    (ax,) = _plot_axes(fig)
    labels = _labels(ax)
    assert {"FLUX.1-dev, one run per budget", "FLUX.1-dev, x0 of one 28-step run", "FLUX.1-schnell, 4 steps"} <= labels
    dev = next(line for line in ax.get_lines() if line.get_label() == "FLUX.1-dev, one run per budget")
    assert list(dev.get_xdata()) == list(DRIFT_STEPS) and max(dev.get_ydata()) == dev.get_ydata()[2]  # peak at 4
    assert "peak at 4 steps" in _caption(fig)
    assert "peak at" not in _caption(fig5_steps.build(tiny))
    fig = fig5_guidance.build(real)
    left, right = _plot_axes(fig)
    assert any(label.startswith("paper: 0.591") for label in _labels(left))
    assert right.get_ylabel().startswith("mean pixel value")


def test_figure6_six_tier_panels_with_dotted_schnell_reference(real, tiny):
    fig = fig6_tiers.build(real)
    axes = _plot_axes(fig)
    assert len(axes) == 6
    assert [ax.get_title().split(" (")[0] for ax in axes] == [f"tier {i}: {p}" for i, p in enumerate(TIERS)]
    for ax in axes:
        dotted = [line for line in ax.get_lines() if line.get_label() == "FLUX.1-schnell, 4 steps"]
        assert len(dotted) == 1 and dotted[0].get_linestyle() == ":"
    assert "paper drift 0.092" in axes[-1].get_title()
    assert TIER_NOTE[1:] in _caption(fig) and TIER_NOTE[1:] in _caption(fig6_tiers.build(tiny))  # capitalised


def test_figure7_hatched_schnell_bars_and_two_half_heatmap(real):
    fig = fig7_drift.build_bars(real)
    (ax,) = _plot_axes(fig)
    hatched = [p for p in ax.patches if p.get_hatch()]
    solid = [p for p in ax.patches if not p.get_hatch() and p.get_height() == p.get_height()]
    assert len(hatched) == len(TIERS) and len(solid) >= len(TIERS)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(TIERS)
    assert TIER_NOTE[1:] in _caption(fig)
    fig = fig7_drift.build_heatmap(real)
    dev, schnell = _plot_axes(fig)
    assert (dev.get_title(), schnell.get_title()) == ("FLUX.1-dev", "FLUX.1-schnell")
    assert dev.images[0].get_array().shape == (len(TIERS), len(DRIFT_STEPS))
    assert schnell.images[0].get_array().shape == (len(TIERS), 3)
    assert dev.images[0].norm is schnell.images[0].norm  # one colour scale for both halves


def test_text_identity_figure_goes_beyond_the_paper(real, tiny):
    fig = text_identity.build(real)
    top, bottom = _plot_axes(fig)
    assert "ID_sim" in top.get_ylabel() and "CLIP-T" in bottom.get_ylabel()
    assert set(TIERS) <= _labels(top) and set(TIERS) <= _labels(bottom)
    clip = next(line for line in bottom.get_lines() if line.get_label() == "style")
    assert clip.get_ydata()[-1] > clip.get_ydata()[0]  # the CLIP-T values of the records, through the accessor
    assert _caption(fig).startswith(BEYOND_PAPER) and "Beyond the paper" in top.get_title()
    assert "CLIP-T say nothing" in _caption(text_identity.build(tiny)).replace("ID_sim, ", "")


def test_figure2_columns_in_the_papers_order_with_latencies(real):
    image, caption, columns = fig2_grid.build(real)
    assert columns == ["reference"] + [f"{p}\nschnell-4" for p in EVAL] + [f"{p}\ndev-28" for p in EVAL]
    assert image.size == grid_size(3, 7)
    assert "dev-28 10.3 s (median of 3 rounds, 95% CI" in caption and "schnell-4 1.72 s (" in caption
    assert "dev-4 1.74 s (" in caption


def test_every_figure_renders_at_its_size_and_a_missing_claim_is_listed(tmp_path, real):
    report = Report(out=tmp_path)
    draw_figures(real, tmp_path, report)
    assert not report.missing
    for name in report.written:
        with Image.open(tmp_path / name) as image:
            if name != GRID_FILE:
                w, h = FIGURE_SIZES[name]
                assert image.size == (round(w * DPI), round(h * DPI))
            assert image.text["Comment"].startswith(("Figure", BEYOND_PAPER))
    without = RunData(ConstructedRun("real", [c for c in ALL if c.id not in (TEXT_IDENTITY, "figure4_alpha")], False),
                      load_baseline(PAPER_BASELINE))
    report = Report(out=tmp_path)
    draw_figures(without, tmp_path, report)
    assert set(report.missing) == {"text_identity_competition.png", "figure4_alpha.png"}
    assert "beyond the paper" in report.missing["text_identity_competition.png"]
    assert "--claims text_identity_competition" in report.missing["text_identity_competition.png"]
    assert not (tmp_path / "figure4_alpha.png").exists()


def test_tables_show_intervals_every_latency_and_caveats(real, tiny):
    lines = table1(real)
    dev4 = next(line for line in lines if line.startswith("| FLUX.1-dev, 4 steps"))
    assert "| 1.73 | 1.74 [" in dev4  # dev-4's latency is shown with its interval
    assert lines[2].count("[") >= 3  # ID_sim, LPIPS and latency with their intervals
    assert lines[2].endswith("| - |")  # no caveat on the real profile
    tiny_lines = table1(tiny)
    assert tiny_lines[2].endswith("| ID_sim: no faces: 0; LPIPS: random VGG; latency: CPU |")
    notes = "\n".join(caveat_notes(tiny))
    assert "random VGG backbone (pnet_rand) on 64x64 px" in notes and "CPU seconds" in notes
    rows = table2(real)
    assert len(rows) == 2 + len(EVAL) + 1 and "(n=4)" in rows[2]
    assert table2(tiny)[2].endswith("| no faces: 0 |") and not caveat_notes(real)
