"""From per-sample records to a claim's figures, and the check of its expectations.

A record is `{"spec": RunSpec dict, "metrics": {"id_sim": {...}, "lpips": {...}, "pixels": {...}}}`.
Each summary returns `figures` (metric id -> number: what the baseline stores and the gate compares)
and `samples` (metric id -> {paired sample key -> number}: what the paired gate resamples).
`evaluate` then gives every figure its uncertainty (`intervals`: metric id -> idrift.stats.Figure):
means over samples by the gate's seed-clustered bootstrap, other figures (peak step, drop, rank
correlations, fractions, minima) by re-running the summary on identities drawn with replacement,
counts and bitwise checks exact. `check_expectations` words each expectation by idrift.verdicts.decide.

Aggregation of ID_sim: a generated image with no detected face counts as 0 ("zero", the default and
the conservative choice: losing the face is losing the identity) or is left out ("detected"). The
detection rate is reported beside every mean either way.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from idrift import verdicts
from idrift.claims import REAL_ONLY, Arm, Claim, Expect
from idrift.config import EAGER, RunSpec
from idrift.evaluate_fast import summary_fast_paths  # noqa: F401 - a SUMMARIES entry, in its own module
from idrift.stats import Figure, exact, identity_bootstrap, mean_figure

AGGREGATIONS = ("zero", "detected")


@dataclass
class ClaimResult:
    claim: Claim
    figures: dict[str, float] = field(default_factory=dict)
    samples: dict[str, dict[str, float]] = field(default_factory=dict)
    intervals: dict[str, Figure] = field(default_factory=dict)
    timings: dict[str, list[float]] = field(default_factory=dict)  # arm -> timed rounds (seconds): latency only
    notes: list[str] = field(default_factory=list)
    n_records: int = 0
    n_failed: int = 0


def arm_of(spec: dict, arms: tuple[Arm, ...]) -> Arm | None:
    """The arm a sample belongs to: every RunSpec field the arm sets (Arm.spec_fields) matches. A claim whose
    arms all take the eager path is run on whichever path the session's options name, so its arms match
    any `acceleration`; one whose arms name their paths (fast_paths) matches it too. An arm with a `method`
    (idrift.scoring.claims.MethodArm) holds that scored method's samples only; the paper's arms hold
    idrift's own (RunSpec.method "")."""
    own_paths = any(arm.acceleration != EAGER for arm in arms)
    for arm in arms:
        if spec.get("method", "") != getattr(arm, "method", ""):
            continue
        fields = arm.spec_fields()
        if not own_paths:
            del fields["acceleration"]
        if all(spec.get(name, _SPEC_DEFAULTS.get(name)) == value for name, value in fields.items()):
            return arm
    return None


_SPEC_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunSpec)}  # a field older records lack


def sample_key(spec: dict) -> str:
    return f"{spec['identity']}|{spec['prompt_id']}|{spec['seed']}"


def id_sim_of(record: dict, aggregation: str) -> float | None:
    """A record's ID_sim under the aggregation rule; None when it does not count."""
    values = record.get("metrics", {}).get("id_sim")
    if values is None:
        return None
    if values.get("id_sim") is None:  # no face found in the generated image
        return 0.0 if aggregation == "zero" else None
    return float(values["id_sim"])


def metric_of(record: dict, metric: str, aggregation: str) -> float | None:
    """A record's value of `metric`: ID_sim under the aggregation rule, a pixel statistic, or any other
    metric (LPIPS, the registered ones of idrift.metrics) stored as {"<metric>": value} under its own name."""
    if metric == "id_sim":
        return id_sim_of(record, aggregation)
    group, name = {"pixel_mean": ("pixels", "pixel_mean")}.get(metric, (metric, metric))
    values = record.get("metrics", {}).get(group)
    return None if values is None or values.get(name) is None else float(values[name])


class Table:
    """Records indexed by arm name and paired sample key."""

    def __init__(self, claim: Claim, records: list[dict], aggregation: str):
        self.aggregation = aggregation
        self.by_arm: dict[str, dict[str, dict]] = defaultdict(dict)
        for record in records:
            arm = arm_of(record["spec"], claim.arms)
            if arm is not None and record.get("status", "ok") == "ok":
                self.by_arm[arm.name][sample_key(record["spec"])] = record

    def values(self, arm: str, metric: str) -> dict[str, float]:
        out = {}
        for key, record in self.by_arm.get(arm, {}).items():
            value = metric_of(record, metric, self.aggregation)
            if value is not None:
                out[key] = value
        return out

    def detection_rate(self, arm: str) -> float | None:
        records = [r for r in self.by_arm.get(arm, {}).values() if "id_sim" in r.get("metrics", {})]
        if not records:
            return None
        return float(np.mean([r["metrics"]["id_sim"].get("id_sim") is not None for r in records]))


def _mean(values: dict[str, float]) -> float | None:
    return float(np.mean(list(values.values()))) if values else None


def _spearman(x: list[float], y: list[float]) -> float | None:
    """Rank correlation; undefined (None) when either side is constant."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(stats.spearmanr(x, y).statistic)


def _paired_delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """b - a over the sample keys both have."""
    return {k: b[k] - a[k] for k in sorted(a.keys() & b.keys())}


def _put(result: ClaimResult, metric: str, samples: dict[str, float] | None = None, value: float | None = None) -> None:
    if samples:
        result.samples[metric] = samples
        value = _mean(samples)
    if value is not None and np.isfinite(value):
        result.figures[metric] = float(value)


def _per_arm(result: ClaimResult, table: Table, metrics: tuple[str, ...]) -> None:
    for arm in result.claim.arms:
        for metric in metrics:
            _put(result, f"{metric}[{arm.name}]", table.values(arm.name, metric))
        rate = table.detection_rate(arm.name)
        if rate is not None:
            result.figures[f"detection_rate[{arm.name}]"] = rate


def _curve(table: Table, arms: list[Arm], metric: str = "id_sim") -> dict[int, float]:
    return {arm.steps: m for arm in arms if (m := _mean(table.values(arm.name, metric))) is not None}


def _drift_figures(curve: dict[int, float]) -> dict[str, float]:
    """Peak step, value at the peak and at the last step, and the drop between them."""
    if not curve:
        return {}
    peak_step = max(curve, key=lambda s: (curve[s], -s))
    last = max(curve)
    return {"peak_step": float(peak_step), "id_sim_at_peak": curve[peak_step], f"id_sim_at_{last}": curve[last],
            "drop": curve[peak_step] - curve[last]}


# ---- summaries, one per claim shape ---------------------------------------------------------
def summary_backbone_swap(result: ClaimResult, table: Table) -> None:
    _per_arm(result, table, ("id_sim", "lpips", "pixel_mean"))
    _put(result, "id_sim_delta", _paired_delta(table.values("dev-28", "id_sim"), table.values("schnell-4", "id_sim")))
    _put(result, "lpips_delta", _paired_delta(table.values("dev-28", "lpips"), table.values("schnell-4", "lpips")))


def summary_dev4_diagnostic(result: ClaimResult, table: Table) -> None:
    _per_arm(result, table, ("id_sim", "pixel_mean"))
    _put(result, "id_sim_delta", _paired_delta(table.values("dev-28", "id_sim"), table.values("dev-4", "id_sim")))


def summary_by_prompt(result: ClaimResult, table: Table) -> None:
    dev, schnell = table.values("dev-28", "id_sim"), table.values("schnell-4", "id_sim")
    prompts = sorted({k.split("|")[1] for k in dev.keys() | schnell.keys()})
    deltas = []
    for prompt in prompts:
        d = {k: v for k, v in dev.items() if k.split("|")[1] == prompt}
        s = {k: v for k, v in schnell.items() if k.split("|")[1] == prompt}
        _put(result, f"id_sim[dev-28|{prompt}]", d)
        _put(result, f"id_sim[schnell-4|{prompt}]", s)
        delta = _paired_delta(d, s)
        _put(result, f"delta[{prompt}]", delta)
        if delta:
            deltas.append(_mean(delta))
    if deltas:
        result.figures["min_prompt_delta"] = float(min(deltas))


def summary_per_identity(result: ClaimResult, table: Table) -> None:
    dev, schnell = table.values("dev-28", "id_sim"), table.values("schnell-4", "id_sim")
    by_identity: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for key in dev.keys() & schnell.keys():
        by_identity[key.split("|")[0]].append((dev[key], schnell[key]))
    if by_identity:
        wins = {ident: float(np.mean([s for _, s in pairs]) >= np.mean([d for d, _ in pairs]))
                for ident, pairs in by_identity.items()}
        result.figures["fraction_schnell_ge_dev"] = float(np.mean(list(wins.values())))
        result.figures["n_identities"] = float(len(wins))


def summary_drift(result: ClaimResult, table: Table) -> None:
    budget = [a for a in result.claim.arms if a.mode == "budget"]
    trajectory = [a for a in result.claim.arms if a.mode == "trajectory"]
    _per_arm(result, table, ("id_sim", "pixel_mean"))
    b_curve, t_curve = _curve(table, budget), _curve(table, trajectory)
    result.figures.update(_drift_figures(b_curve))
    result.figures.update({f"trajectory_{k}": v for k, v in _drift_figures(t_curve).items()})
    # Agreement of the two modes, and the exact identity of their final images.
    common = sorted(b_curve.keys() & t_curve.keys())
    if len(common) >= 3:
        _put(result, "mode_agreement_spearman", value=_spearman([b_curve[s] for s in common], [t_curve[s] for s in common]))
    last_b, last_t = table.by_arm.get(budget[-1].name, {}), table.by_arm.get(trajectory[-1].name, {})
    pairs = [(last_b[k], last_t[k]) for k in last_b.keys() & last_t.keys()]
    if pairs:
        result.figures["trajectory_final_mismatches"] = float(sum(_digest(b) != _digest(t) for b, t in pairs))


def _digest(record: dict) -> str | None:
    return record.get("metrics", {}).get("pixels", {}).get("sha256")


def summary_guidance(result: ClaimResult, table: Table) -> None:
    _per_arm(result, table, ("id_sim", "pixel_mean"))
    names = [arm.name for arm in result.claim.arms]
    keys = set.intersection(*(set(table.by_arm.get(n, {})) for n in names)) if names else set()
    varying, id_ranges = 0, []
    for key in sorted(keys):
        records = [table.by_arm[n][key] for n in names]
        varying += len({_digest(r) for r in records}) > 1
        sims = [id_sim_of(r, table.aggregation) for r in records]
        if all(s is not None for s in sims):
            id_ranges.append(max(sims) - min(sims))
    if keys:
        result.figures["samples_varying_with_guidance"] = float(varying)
    if id_ranges:
        result.figures["id_sim_range"] = float(max(id_ranges))
    all_sims = [v for n in names for v in table.values(n, "id_sim").values()]
    if all_sims:
        result.figures["id_sim_mean"] = float(np.mean(all_sims))  # the paper's one number over all scales


def summary_alpha(result: ClaimResult, table: Table) -> None:
    drifts, peaks = [], []
    for alpha in sorted({a.alpha for a in result.claim.arms}):
        figures = _drift_figures(_curve(table, [a for a in result.claim.arms if a.alpha == alpha]))
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
                    if (m := _mean({k: v for k, v in table.values(a.name, "id_sim").items() if k.split("|")[1] == prompt})) is not None}
        if (d := _drift_figures(curve(dev))):
            dev_drift[prompt] = d["drop"]
            result.figures[f"drift[{prompt}]"] = d["drop"]
        if (s := _drift_figures(curve(schnell))):
            schnell_drift[prompt] = s["drop"]
            result.figures[f"schnell_drift[{prompt}]"] = s["drop"]
    if len(dev_drift) >= 3:
        order = sorted(dev_drift, key=lambda p: tiers[p])
        _put(result, "tier_drift_spearman", value=_spearman([tiers[p] for p in order], [dev_drift[p] for p in order]))
    if schnell_drift:
        result.figures["schnell_drift_max"] = float(max(schnell_drift.values()))


def _pearson(x: list[float], y: list[float]) -> float | None:
    """Linear correlation; undefined (None) when either side is constant."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(stats.pearsonr(x, y).statistic)


def _prompt_curve(table: Table, arms: list[Arm], metric: str, prompt: str | None = None) -> dict[int, float]:
    """step -> mean of `metric` over the samples of `prompt` (None: all prompts)."""
    out = {}
    for arm in arms:
        values = {k: v for k, v in table.values(arm.name, metric).items() if prompt is None or k.split("|")[1] == prompt}
        if (m := _mean(values)) is not None:
            out[arm.steps] = m
    return out


def _text_gain(id_curve: dict[int, float], clip_curve: dict[int, float]) -> tuple[float, float] | None:
    """(ID_sim drop, CLIP-T gain) from the identity peak step to the last step; None without both curves."""
    drift = _drift_figures(id_curve)
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
    _per_arm(result, table, ("id_sim",))  # clip_t[<arm>]: every registered metric gets them (_summarise)
    clip_curve = _prompt_curve(table, arms, "clip_t")
    if len(clip_curve) >= 3:
        steps = sorted(clip_curve)
        _put(result, "clip_t_step_spearman", value=_spearman(steps, [clip_curve[s] for s in steps]))
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
        _put(result, "drift_gain_pearson", value=_pearson(drifts, gains))
        _put(result, "drift_gain_spearman", value=_spearman(drifts, gains))


def summary_latency(result: ClaimResult, table: Table) -> None:
    """Median seconds per arm and the dev-28 / schnell-4 speed-up, from the timed rounds stored with each
    arm's sample (the metric `latency`: idrift.metrics.latency.time_rounds), each with a bootstrap interval
    over the rounds (the rounds are the independent units of a timing)."""
    from idrift.stats import median_figure, ratio_figure

    for arm in result.claim.arms:
        rounds = [float(t) for record in table.by_arm.get(arm.name, {}).values()
                  for t in (record.get("metrics", {}).get("latency") or {}).get("seconds", [])]
        if not rounds:
            continue
        result.timings[arm.name] = rounds
        figure = median_figure(rounds)
        result.figures[f"latency_s[{arm.name}]"] = figure.value
        result.intervals[f"latency_s[{arm.name}]"] = figure
    if {"dev-28", "schnell-4"} <= result.timings.keys():
        figure = ratio_figure(result.timings["dev-28"], result.timings["schnell-4"])
        result.figures["speedup"] = figure.value
        result.intervals["speedup"] = figure


def _backend_agreement(result: ClaimResult, records: list[dict]) -> None:
    """Rank correlation of the two face backends over the samples where both found a face."""
    pairs = [(r["metrics"]["id_sim"]["id_sim"], r["metrics"]["id_sim_agreement"]["id_sim"]) for r in records
             if r.get("metrics", {}).get("id_sim", {}).get("id_sim") is not None
             and r.get("metrics", {}).get("id_sim_agreement", {}).get("id_sim") is not None]
    if len(pairs) >= 3:
        _put(result, "backend_agreement_spearman", value=_spearman(*map(list, zip(*pairs))))
        result.figures["backend_agreement_n"] = float(len(pairs))


def summary_per_arm(result: ClaimResult, table: Table) -> None:
    """Per-arm means only (pixel_mean, and ID_sim / LPIPS where the claim lists them): for a claim whose
    expectations read `<metric>[<arm>]` figures. Registered metrics get theirs in every summary."""
    _per_arm(result, table, ("pixel_mean", *(m for m in ("id_sim", "lpips") if m in result.claim.metrics)))


SUMMARIES = {name[len("summary_"):]: fn for name, fn in globals().items() if name.startswith("summary_")}


def _run_summary(result: ClaimResult, records: list[dict], aggregation: str) -> None:
    """The claim's summary, plus `<metric>[<arm>]` means of every registered metric (idrift.metrics) it lists."""
    from idrift.metrics import REGISTRY

    table = Table(result.claim, records, aggregation)
    SUMMARIES[result.claim.summary](result, table)
    registered = tuple(m for m in result.claim.metrics if m in REGISTRY)
    if registered:
        for arm in result.claim.arms:
            for metric in registered:
                _put(result, f"{metric}[{arm.name}]", table.values(arm.name, metric))


def _summarise(claim: Claim, records: list[dict], aggregation: str) -> ClaimResult:
    result = ClaimResult(claim=claim)
    _run_summary(result, records, aggregation)
    return result


EXACT_PARTS = ("structural", "count")  # counts and bitwise checks: no sampling error


def add_intervals(result: ClaimResult, records: list[dict], aggregation: str) -> None:
    """Every figure's Figure: means clustered by (identity, prompt), the rest over identities."""
    others = []
    for metric, value in result.figures.items():
        if metric in result.intervals:  # the summary's own (timings: a bootstrap over the rounds)
            continue
        if verdicts.part_of(metric) in EXACT_PARTS:
            result.intervals[metric] = exact(value)
        elif result.samples.get(metric):
            result.intervals[metric] = mean_figure(result.samples[metric])
        else:
            others.append(metric)
    if not others:
        return
    by_identity: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        if record.get("status", "ok") == "ok":
            by_identity[record["spec"]["identity"]].append(record)
    identities = sorted(by_identity)

    def recompute(drawn: list[str]) -> dict[str, float]:
        renamed = [{**r, "spec": {**r["spec"], "identity": f"{ident}#{i}"}}
                   for i, ident in enumerate(drawn) for r in by_identity[ident]]
        return _summarise(result.claim, renamed, aggregation).figures

    result.intervals.update(identity_bootstrap(identities, recompute, {m: result.figures[m] for m in others}))


def evaluate(claim: Claim, records: list[dict], aggregation: str = "zero") -> ClaimResult:
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    result = ClaimResult(claim=claim, n_records=len(records),
                         n_failed=sum(r.get("status", "ok") != "ok" for r in records))
    _run_summary(result, records, aggregation)
    _backend_agreement(result, records)
    # An undefined figure (a rank correlation of constant values, say) is absent, not NaN.
    undefined = sorted(k for k, v in result.figures.items() if not np.isfinite(v))
    for key in undefined:
        del result.figures[key]
    if undefined:
        result.notes.append(f"undefined on this run (constant or missing inputs): {', '.join(undefined)}")
    if result.n_failed:
        result.notes.append(f"{result.n_failed} of {len(records)} samples failed (recorded in the store)")
    add_intervals(result, records, aggregation)
    return result


@dataclass
class ExpectationOutcome:
    expect: Expect
    status: str  # PASS, FAIL, INCONCLUSIVE or NOT JUDGEABLE (idrift.verdicts)
    measured: float | None
    reason: str = ""
    figure: Figure | None = None

    @property
    def part(self) -> str:
        return verdicts.part_of(self.expect.metric)

    def line(self, claim_id: str) -> str:
        shown = "n/a" if self.measured is None else (self.figure.text() if self.figure else f"{self.measured:.4g}")
        return f"{claim_id}: {self.expect} [{self.expect.why}] -> {self.status} (measured {shown}){' - ' + self.reason if self.reason else ''}"


def figure_of(result: ClaimResult, metric: str) -> Figure | None:
    """The figure with its interval; a figure evaluate gave no interval (latency, say) has none."""
    if metric in result.intervals:
        return result.intervals[metric]
    value = result.figures.get(metric)
    return None if value is None else Figure(float(value))


def check_expectations(result: ClaimResult, profile: str, skip_reasons: dict[str, str]) -> list[ExpectationOutcome]:
    """Word each expectation by idrift.verdicts.decide; the ones this profile cannot judge are NOT
    JUDGEABLE with the reason."""
    outcomes = []
    for expect in result.claim.expectations:
        figure = figure_of(result, expect.metric)
        measured = None if figure is None else figure.value
        if profile not in expect.profiles:
            # Identity/LPIPS expectations (real only) get the profile's reason and what to provide.
            general = f"judged on the {' and '.join(expect.profiles)} profiles only"
            reason = (skip_reasons.get(profile) if expect.profiles == REAL_ONLY else None) or general
            outcomes.append(ExpectationOutcome(expect, verdicts.NOT_JUDGEABLE, measured, reason, figure))
            continue
        word, reason = verdicts.decide(expect.op, expect.value, figure)
        outcomes.append(ExpectationOutcome(expect, word, measured, reason, figure))
    return outcomes


def claim_verdict(claim: Claim, outcomes: list[ExpectationOutcome], tier: str | None = None,
                  require_real: bool = False) -> tuple[str, str, str]:
    """(word, parts, whether the tier can decide it): the worst part's word, each part's word
    ('structural PASS; identity NOT JUDGEABLE') and the simulation's power phrase ('' without a tier)."""
    word = verdicts.claim_word([o.status for o in outcomes], require_real)
    parts = verdicts.parts_text((o.part, o.status) for o in outcomes)
    decides = ""
    if tier is not None:
        from idrift.baselines.simulate import tier_decides

        decides = tier_decides(claim, tier)
    return word, parts, decides


def claim_line(claim: Claim, outcomes: list[ExpectationOutcome], tier: str | None = None,
               require_real: bool = False) -> str:
    """'figure5_drift: NOT JUDGEABLE (structural PASS; identity NOT JUDGEABLE); the smoke tier cannot decide it ...'"""
    word, parts, decides = claim_verdict(claim, outcomes, tier, require_real)
    return f"{claim.id}: {word} ({parts})" + (f"; {decides}" if decides else "")


def summary_lines(claim_id: str, outcomes: list[ExpectationOutcome], tier: str | None = None,
                  require_real: bool = False) -> list[str]:
    """What the terminal shows for a claim: its word with each part, each judged expectation on its
    own line, and the ones this profile cannot judge together on one line with the reason."""
    from idrift.claims import CLAIMS_BY_ID

    lines = [claim_line(CLAIMS_BY_ID[claim_id], outcomes, tier, require_real)] if claim_id in CLAIMS_BY_ID else []
    lines += [o.line(claim_id) for o in outcomes if o.status != verdicts.NOT_JUDGEABLE]
    skipped = [o for o in outcomes if o.status == verdicts.NOT_JUDGEABLE]
    if skipped:
        what = ", ".join(str(o.expect) for o in skipped)
        lines.append(f"{claim_id}: NOT JUDGEABLE {what} - {skipped[0].reason}")
    return lines
