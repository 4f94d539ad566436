"""The summaries of identity drift over the step budget: the drift family (Figure 5: the budget and
trajectory modes, their agreement and their final images), alpha (Figure 4: the drift per InfuseNet
scale) and prompt_complexity (Figures 6-7: the drift per prompt against its complexity tier)."""

from __future__ import annotations

from idrift.evaluate.figures import drift_figures, image_digest, mean_of, put_figure, put_per_arm, spearman, step_curve
from idrift.evaluate.records import ClaimResult, Table


def summary_drift(result: ClaimResult, table: Table) -> None:
    budget = [a for a in result.claim.arms if a.mode == "budget"]
    trajectory = [a for a in result.claim.arms if a.mode == "trajectory"]
    put_per_arm(result, table, ("id_sim", "pixel_mean"))
    b_curve, t_curve = step_curve(table, budget), step_curve(table, trajectory)
    result.figures.update(drift_figures(b_curve))
    result.figures.update({f"trajectory_{k}": v for k, v in drift_figures(t_curve).items()})
    # Agreement of the two modes, and the exact identity of their final images.
    common = sorted(b_curve.keys() & t_curve.keys())
    if len(common) >= 3:
        put_figure(result, "mode_agreement_spearman",
             value=spearman([b_curve[s] for s in common], [t_curve[s] for s in common]))
    last_b, last_t = table.by_arm.get(budget[-1].name, {}), table.by_arm.get(trajectory[-1].name, {})
    pairs = [(last_b[k], last_t[k]) for k in last_b.keys() & last_t.keys()]
    if pairs:
        result.figures["trajectory_final_mismatches"] = float(sum(image_digest(b) != image_digest(t) for b, t in pairs))


def summary_alpha(result: ClaimResult, table: Table) -> None:
    drifts, peaks = [], []
    for alpha in sorted({a.alpha for a in result.claim.arms}):
        figures = drift_figures(step_curve(table, [a for a in result.claim.arms if a.alpha == alpha]))
        if figures:
            result.figures[f"drift[a{alpha:g}]"] = figures["drop"]
            result.figures[f"peak_step[a{alpha:g}]"] = figures["peak_step"]
            drifts.append(figures["drop"])
            peaks.append(figures["peak_step"])
    if drifts:
        result.figures["min_drift"], result.figures["max_drift"] = float(min(drifts)), float(max(drifts))
        result.figures["max_peak_step"] = float(max(peaks))


def summary_prompt_complexity(result: ClaimResult, table: Table) -> None:
    dev = [a for a in result.claim.arms if a.backbone == "dev"]
    schnell = [a for a in result.claim.arms if a.backbone == "schnell"]
    from idrift.data.prompts import load_prompt_set

    measured = {r["spec"]["prompt_id"] for records in table.by_arm.values() for r in records.values()}
    tiers = {p.id: p.tier for p in load_prompt_set(result.claim.samples.prompt_set).prompts if p.id in measured}
    dev_drift, schnell_drift = {}, {}
    for prompt in tiers:
        def curve(arms):
            return {a.steps: m for a in arms
                    if (m := mean_of({k: v for k, v in table.values(a.name, "id_sim").items()
                                    if k.split("|")[1] == prompt})) is not None}
        if (d := drift_figures(curve(dev))):
            dev_drift[prompt] = d["drop"]
            result.figures[f"drift[{prompt}]"] = d["drop"]
        if (s := drift_figures(curve(schnell))):
            schnell_drift[prompt] = s["drop"]
            result.figures[f"schnell_drift[{prompt}]"] = s["drop"]
    if len(dev_drift) >= 3:
        order = sorted(dev_drift, key=lambda p: tiers[p])
        put_figure(result, "tier_drift_spearman",
                   value=spearman([tiers[p] for p in order], [dev_drift[p] for p in order]))
    if schnell_drift:
        result.figures["schnell_drift_max"] = float(max(schnell_drift.values()))
