"""The text_identity family's summary, beyond the paper: text alignment (CLIP-T) against ID_sim over the
FLUX.1-dev trajectory, pooled and per prompt tier."""

from __future__ import annotations

from scipy import stats

from idrift.claims import Arm
from idrift.evaluate.figures import drift_figures, mean_of, put_figure, put_per_arm, spearman
from idrift.evaluate.records import ClaimResult, Table


def _pearson(x: list[float], y: list[float]) -> float | None:
    """Linear correlation; undefined (None) when either side is constant."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(stats.pearsonr(x, y).statistic)


def _prompt_curve(table: Table, arms: list[Arm], metric: str, prompt: str | None = None) -> dict[int, float]:
    """step -> mean of `metric` over the samples of `prompt` (None: all prompts)."""
    out = {}
    for arm in arms:
        values = {k: v for k, v in table.values(arm.name, metric).items()
                  if prompt is None or k.split("|")[1] == prompt}
        if (m := mean_of(values)) is not None:
            out[arm.steps] = m
    return out


def _text_gain(id_curve: dict[int, float], clip_curve: dict[int, float]) -> tuple[float, float] | None:
    """(ID_sim drop, CLIP-T gain) from the identity peak step to the last step; None without both curves."""
    drift = drift_figures(id_curve)
    if not drift or max(clip_curve, default=None) != max(id_curve) or int(drift["peak_step"]) not in clip_curve:
        return None
    return drift["drop"], clip_curve[max(clip_curve)] - clip_curve[int(drift["peak_step"])]


def summary_text_identity(result: ClaimResult, table: Table) -> None:
    """Beyond the paper: CLIP-T over the dev trajectory (steps 4..28) against ID_sim, per prompt tier.

    clip_t_step_spearman: rank correlation of step and mean CLIP-T (all tiers pooled): > 0 means text
    alignment keeps rising while identity drifts. Per tier, drift = ID_sim at its peak - at the last step
    and clip_t_gain = CLIP-T at the last step - at that ID_sim peak; drift_gain_pearson correlates the two
    over the tiers (scipy.stats.pearsonr; drift_gain_spearman beside it)."""
    from idrift.data.prompts import load_prompt_set

    arms = [a for a in result.claim.arms if a.backbone == "dev"]
    # clip_t[<arm>]: every registered metric gets them (idrift.evaluate._run_summary).
    put_per_arm(result, table, ("id_sim",))
    clip_curve = _prompt_curve(table, arms, "clip_t")
    if len(clip_curve) >= 3:
        steps = sorted(clip_curve)
        put_figure(result, "clip_t_step_spearman", value=spearman(steps, [clip_curve[s] for s in steps]))
    pooled = _text_gain(_prompt_curve(table, arms, "id_sim"), clip_curve)
    if pooled:
        result.figures["id_sim_drop"], result.figures["clip_t_gain"] = pooled
    measured = {r["spec"]["prompt_id"] for records in table.by_arm.values() for r in records.values()}
    tiers = {p.id: p.tier for p in load_prompt_set(result.claim.samples.prompt_set).prompts if p.id in measured}
    drifts, gains = [], []
    for prompt in sorted(tiers, key=lambda p: (tiers[p] is None, tiers[p] or 0, p)):
        found = _text_gain(_prompt_curve(table, arms, "id_sim", prompt), _prompt_curve(table, arms, "clip_t", prompt))
        if found:
            result.figures[f"drift[{prompt}]"], result.figures[f"clip_t_gain[{prompt}]"] = found
            drifts.append(found[0])
            gains.append(found[1])
    if len(drifts) >= 3:
        put_figure(result, "drift_gain_pearson", value=_pearson(drifts, gains))
        put_figure(result, "drift_gain_spearman", value=spearman(drifts, gains))
