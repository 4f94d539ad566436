"""The gates on timings: a ratio measured within one run, and seconds per image on one GPU model.

- `ratio_gate`: ratios measured in one run (speedup = latency(dev-28) / latency(schnell-4)),
  portable across GPUs, with a relative tolerance.
- `absolute_latency_gate`: seconds per image, compared only on the same GPU model; otherwise
  'not comparable' with the reason, never compared silently.
"""

from __future__ import annotations

import numpy as np

from idrift.baselines.band import band_gate
from idrift.baselines.provenance import gpu_model
from idrift.baselines.verdict import Verdict, check_rule, fails, tolerance_margin
from idrift.stats import CONFIDENCE, mean_interval, ratio_figure


def _as_samples(x) -> np.ndarray:
    return np.atleast_1d(np.asarray(x, dtype=float))


def ratio_gate(
    numerator,
    denominator,
    baseline_ratio: float,
    *,
    tolerance: float,
    tolerance_kind: str = "relative",
    direction: str = "higher_is_better",
    confidence: float = CONFIDENCE,
    n_resamples: int = 9999,
    seed: int = 0,
    claim: str = "",
    metric: str = "",
) -> Verdict:
    """A ratio measured within one run, e.g. speedup = latency(dev-28) / latency(schnell-4).

    `numerator` and `denominator` are one value or the repeated timings of each arm. A ratio
    from one machine cancels the GPU's speed, so it is comparable with the paper's 5.9x on any
    GPU (up to how the arms' costs scale). With two or more timings per arm, the interval is a
    bootstrap CI of mean(numerator) / mean(denominator) (the arms resampled independently).
    """
    check_rule(tolerance, direction, tolerance_kind)
    num, den = _as_samples(numerator), _as_samples(denominator)
    if num.size == 0 or den.size == 0:
        raise ValueError("ratio_gate needs at least one value for the numerator and the denominator")
    if not (np.all(np.isfinite(num)) and np.all(np.isfinite(den)) and np.all(num > 0) and np.all(den > 0)):
        raise ValueError(f"ratio_gate needs positive finite timings, got {num.tolist()} / {den.tolist()}")
    ratio = float(num.mean() / den.mean())
    margin = tolerance_margin(tolerance, tolerance_kind, baseline_ratio)
    diff = ratio - baseline_ratio
    verdict = Verdict(
        claim=claim, metric=metric, status="pass", baseline=float(baseline_ratio), candidate=ratio,
        difference=diff, interval=(diff, diff), tolerance=tolerance, direction=direction,
        n=int(min(num.size, den.size)), tolerance_kind=tolerance_kind, margin=margin,
        method="point (one timing per arm)",
    )
    figure = ratio_figure(num, den, center=np.mean, confidence=confidence, n_resamples=n_resamples, seed=seed)
    if figure.ci is not None:
        lo, hi = figure.ci
        verdict.interval = (lo - baseline_ratio, hi - baseline_ratio)
        verdict.method = f"{confidence:.0%} percentile bootstrap CI of the ratio of mean timings, minus the baseline"
    verdict.status = "fail" if fails(verdict.interval[0], verdict.interval[1], margin, direction) else "pass"
    return verdict


def absolute_latency_gate(
    candidate_seconds,
    baseline_seconds: float,
    *,
    candidate_gpu: str | None,
    baseline_gpu: str | None,
    tolerance: float,
    tolerance_kind: str = "relative",
    direction: str = "lower_is_better",
    confidence: float = CONFIDENCE,
    n_resamples: int = 9999,
    seed: int = 0,
    claim: str = "",
    metric: str = "",
) -> Verdict:
    """Seconds per image against a hardware-bound baseline: compared only on the same GPU model.

    `candidate_seconds` is one value or repeated timings (then a bootstrap CI of their mean).
    """
    check_rule(tolerance, direction, tolerance_kind)
    times = _as_samples(candidate_seconds)
    cand = float(times.mean()) if times.size else float("nan")
    same = gpu_model(candidate_gpu) is not None and gpu_model(candidate_gpu) == gpu_model(baseline_gpu)
    if not same:
        return Verdict(
            claim=claim, metric=metric, status="not comparable", baseline=float(baseline_seconds),
            candidate=cand, difference=None, interval=None, tolerance=tolerance, direction=direction,
            n=int(times.size), tolerance_kind=tolerance_kind,
            margin=tolerance_margin(tolerance, tolerance_kind, baseline_seconds),
            notes=[
                (f"absolute latency was measured on {baseline_gpu or 'no GPU'}, this run is on "
                f"{candidate_gpu or 'no GPU'}: seconds are only comparable on the same GPU model; "
                f"the speedup ratio is the portable check, or bless a baseline on this GPU")
            ],
        )
    if times.size >= 2 and np.all(np.isfinite(times)):
        # Percentile: a handful of repeated timings is too few for BCa's jackknife to be stable.
        lo, hi = mean_interval(
            times - baseline_seconds, confidence=confidence, n_resamples=n_resamples, method="percentile", seed=seed
        )
        verdict = band_gate(
            cand, baseline_seconds, tolerance=tolerance, direction=direction, tolerance_kind=tolerance_kind,
            n=int(times.size), claim=claim, metric=metric,
        )
        verdict.interval = (float(lo), float(hi))
        verdict.method = f"{confidence:.0%} percentile bootstrap CI of the mean timing, minus the baseline"
        failed = fails(verdict.interval[0], verdict.interval[1], verdict.margin, direction)
        verdict.status = "fail" if failed else "pass"
        return verdict
    return band_gate(
        cand, baseline_seconds, tolerance=tolerance, direction=direction, tolerance_kind=tolerance_kind,
        n=int(times.size), claim=claim, metric=metric,
    )
