"""The regression gate: is a run worse than its baseline by more than the tolerance?

One rule for every gate: build an interval for (candidate - baseline) and FAIL only when the whole
interval lies past the tolerance margin in the bad direction (idrift.baselines.verdict.fails):

    higher_is_better: hi < -margin        lower_is_better: lo > +margin
    equal:            lo > +margin or hi < -margin   (two-sided; margin 0 with samples = exact match)

so noise alone fails rarely (at most (1 - confidence) / 2 when the true difference sits exactly on
the margin) and a real regression past the margin fails once there are enough samples to see it.

The gates, one module each; `compare_metric` picks one for a baseline metric:

- `paired_gate` (idrift.baselines.paired): per-sample values paired by key
  (identity|prompt|seed|config); a bootstrap CI of the mean paired difference
  (scipy.stats.bootstrap, percentile; see mean_interval). Seeds of one (identity, prompt) are
  averaged first: they share the identity and prompt, so they are not independent samples.
- `band_gate` (idrift.baselines.band): aggregate-only baselines (the paper's numbers): the
  candidate's aggregate, with its standard error when known, against a band around the baseline.
- `ratio_gate` (idrift.baselines.timing): ratios measured in one run
  (speedup = latency(dev-28) / latency(schnell-4)), portable across GPUs, with a relative tolerance.
- `absolute_latency_gate` (idrift.baselines.timing): seconds per image, compared only on the same
  GPU model; otherwise 'not comparable' with the reason, never compared silently.

Every gate returns an idrift.baselines.verdict.Verdict; idrift.baselines.provenance says what
differs between where the baseline came from and the run.
"""

from __future__ import annotations

from collections.abc import Mapping

from idrift.baselines.band import band_gate
from idrift.baselines.paired import paired_gate
from idrift.baselines.timing import absolute_latency_gate
from idrift.baselines.verdict import Verdict
from idrift.stats import CONFIDENCE


def compare_metric(
    claim: str,
    metric: str,
    base,
    *,
    candidate_aggregate: float,
    candidate_samples: Mapping[str, float] | None = None,
    candidate_sem: float | None = None,
    candidate_interval: tuple[float, float] | None = None,
    candidate_n: int | None = None,
    baseline_gpu: str | None = None,
    candidate_gpu: str | None = None,
    **bootstrap_options,
) -> Verdict:
    """Pick the gate for one baseline metric (an io.MetricBaseline): hardware-bound -> absolute
    latency (same GPU only); per-sample values on both sides -> paired; else the band.
    For ratios with timings per arm, call `ratio_gate` directly."""
    rule = {"tolerance": base.tolerance, "direction": base.direction, "tolerance_kind": base.tolerance_kind}
    if base.hardware_bound:
        times = list(candidate_samples.values()) if candidate_samples else candidate_aggregate
        return absolute_latency_gate(
            times, base.aggregate, candidate_gpu=candidate_gpu, baseline_gpu=baseline_gpu,
            claim=claim, metric=metric, **rule, **bootstrap_options,
        )
    if base.samples and candidate_samples:
        return paired_gate(candidate_samples, base.samples, claim=claim, metric=metric, **rule, **bootstrap_options)
    return band_gate(
        candidate_aggregate, base.aggregate, candidate_sem=candidate_sem, candidate_interval=candidate_interval,
        n=candidate_n, baseline_n=base.n, claim=claim, metric=metric,
        **rule, confidence=bootstrap_options.get("confidence", CONFIDENCE),
    )
