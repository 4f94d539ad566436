"""The gate: a claim's result against a baseline file, as a function of (result, baseline, environment).

One verdict row per figure the baseline holds for the claim: a ratio of timed rounds by the ratio test,
every other figure by compare_metric (paired where both sides have per-sample values). The words follow
idrift.verdicts; `gate_row_status` adds the two this module decides (NOT JUDGEABLE and not informative).
Used by the pytest plugin, `idrift run`, `idrift compare` and `idrift bless` through the session.
"""

from __future__ import annotations

from idrift import verdicts
from idrift.baselines.gate import compare_metric
from idrift.baselines.timing import ratio_gate
from idrift.evaluate import ClaimResult
from idrift.evaluate.summaries.fast_paths import speedup_rounds


def gate_claim(result: ClaimResult, baseline, *, profile: str, candidate_gpu: str | None) -> list:
    """The gate's rows for `result` against `baseline` (an idrift.baselines.io.Baseline), measured on
    `profile` and the GPU `candidate_gpu` (None off CUDA); no rows when the baseline lacks the claim."""
    claim_base = baseline.claims.get(result.claim.id)
    if claim_base is None:
        return []
    baseline_profile = baseline.provenance.get("profile")
    # Golden values of random weights (a tiny run against a tiny baseline) are deterministic: the point is
    # compared. Against other samples (the paper's, a real run's) the run's interval counts.
    sampled = profile == "real" or baseline_profile != profile
    rows = []
    for metric_id, base in sorted(claim_base.metrics.items()):
        if metric_id not in result.figures:
            continue
        figure = result.intervals.get(metric_id)
        interval_of = figure if sampled else None
        rounds = speedup_rounds(result, metric_id)  # a ratio of timed rounds: the ratio test
        if rounds is not None:
            verdict = ratio_gate(*rounds, base.aggregate, tolerance=base.tolerance,
                                 tolerance_kind=base.tolerance_kind, direction=base.direction,
                                 claim=result.claim.id, metric=metric_id)
        else:
            verdict = compare_metric(
                result.claim.id, metric_id, base, candidate_aggregate=result.figures[metric_id],
                candidate_samples=gate_samples(result, metric_id), baseline_gpu=baseline.provenance.get("gpu"),
                candidate_gpu=candidate_gpu,
                candidate_interval=interval_of.ci if interval_of is not None else None,
                candidate_sem=interval_of.sem if interval_of is not None else None,
                candidate_n=figure.n if figure is not None else None,
            )
        verdict.baseline_n = base.n
        gate_row_status(verdict, figure, profile, baseline_profile, base)
        rows.append(verdict)
    return rows


def gate_row_status(verdict, figure, profile: str, baseline_profile: str | None, base) -> None:
    """The two words a gate row gets besides the interval's (idrift.verdicts.gate_word):

    - NOT JUDGEABLE: an identity, LPIPS or text-alignment figure of random weights (tiny, synthetic)
      against numbers of another profile (the paper's): random weights make no faces, so the comparison
      says nothing. CPU timings of tiny models against a GPU's numbers are NOT JUDGEABLE too.
    - not informative: such a figure of random weights that cannot move on this profile (every value one
      constant, e.g. ID_sim 0 of faceless images, against the same constant): it passes trivially and is
      not counted as a pass.
    A baseline whose direction contradicts the metric's declared one (idrift.verdicts.METRICS) gets a note.
    """
    declared = verdicts.direction_of(verdict.metric)
    if base.direction != "equal" and base.direction != declared:
        verdict.notes.append(f"the baseline says {base.direction}, idrift declares {declared} for this metric")
    part = verdicts.part_of(verdict.metric)
    if part == "latency" and profile == "tiny" and baseline_profile != profile:
        verdict.status = "not judgeable"
        verdict.notes.insert(0, "CPU timings of tiny models say nothing of a GPU's speed: latency is judged on "
                                "the synthetic and real profiles")
        return
    if profile == "real" or part not in ("identity", "LPIPS", "text alignment"):
        return
    if baseline_profile != profile:
        verdict.status = "not judgeable"
        verdict.notes.insert(0, verdicts.SKIP_REASONS.get(profile, f"the {profile} profile cannot judge identity"))
        return
    constant = figure is not None and figure.constant and figure.value == base.aggregate
    if constant and (not base.samples or len(set(base.samples.values())) == 1):
        verdict.status = "not informative"
        verdict.notes.insert(0, f"{figure.value:g} on both sides and on every sample: cannot move on the "
                                f"{profile} profile")


def gate_samples(result: ClaimResult, metric_id: str) -> dict[str, float] | None:
    """Per-sample values keyed identity|prompt|seed|config, as baselines store them."""
    samples = result.samples.get(metric_id)
    if not samples:
        return None
    config = metric_id.replace("|", "/")
    return {f"{key}|{config}": value for key, value in samples.items()}
