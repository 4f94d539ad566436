"""The regression gate: is a run worse than its baseline by more than the tolerance?

One rule for every gate: build an interval for (candidate - baseline) and FAIL only when the whole
interval lies past the tolerance margin in the bad direction:

    higher_is_better: hi < -margin        lower_is_better: lo > +margin
    equal:            lo > +margin or hi < -margin   (two-sided; margin 0 with samples = exact match)

so noise alone fails rarely (at most (1 - confidence) / 2 when the true difference sits exactly on
the margin) and a real regression past the margin fails once there are enough samples to see it.

- `paired_gate`: per-sample values paired by key (identity|prompt|seed|config); a bootstrap CI
  of the mean paired difference (scipy.stats.bootstrap, percentile; see mean_interval). Seeds of one (identity, prompt) are
  averaged first: they share the identity and prompt, so they are not independent samples.
- `band_gate`: aggregate-only baselines (the paper's numbers): the candidate's aggregate, with
  its standard error when known, against a band around the baseline.
- `ratio_gate`: ratios measured in one run (speedup = latency(dev-28) / latency(schnell-4)),
  portable across GPUs, with a relative tolerance.
- `absolute_latency_gate`: seconds per image, compared only on the same GPU model; otherwise
  'not comparable' with the reason, never compared silently.

    >>> v = paired_gate({"a|p|0|s-4": 0.60, "b|p|0|s-4": 0.62}, {"a|p|0|s-4": 0.60, "b|p|0|s-4": 0.62},
    ...                 tolerance=0.01, direction="higher_is_better")
    >>> v.status
    'pass'
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from idrift.baselines.schema import DIRECTIONS, TOLERANCE_KINDS
from idrift.stats import BOOTSTRAP_BATCH, CONFIDENCE, mean_interval, ratio_figure  # noqa: F401 (re-exported: the gate's interval)

STATUSES = ("pass", "fail", "insufficient", "not comparable", "not judgeable", "not informative")


# Packages whose major.minor changes what the numbers mean; a comparison flags a difference.
KEY_PACKAGES = ("torch", "diffusers", "transformers", "insightface", "onnxruntime", "lpips")


# --------------------------------------------------------------------------------------------- verdict


def format_number(x, digits: int = 6) -> str:
    """A figure for messages and tables: '-' for missing, nan/inf as such, else `digits` significant."""
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


_num = format_number


@dataclass
class Verdict:
    claim: str
    metric: str
    status: str  # one of STATUSES
    baseline: float | None  # baseline value (mean over the pairs used, or the aggregate)
    candidate: float | None
    difference: float | None  # candidate - baseline
    interval: tuple[float, float] | None  # interval of the difference
    tolerance: float
    direction: str
    n: int | None  # pairs (after averaging seeds) or independent units behind the candidate
    notes: list[str] = field(default_factory=list)
    tolerance_kind: str = "absolute"
    margin: float | None = None  # the tolerance in the metric's units (relative x |baseline|)
    method: str = ""  # how the interval was made
    missing_in_candidate: list[str] = field(default_factory=list)  # baseline keys the run lacks
    missing_in_baseline: list[str] = field(default_factory=list)  # run keys the baseline lacks
    baseline_n: int | None = None  # the n the baseline states (the paper's 84), never the run's

    @property
    def word(self) -> str:
        """PASS, FAIL, INCONCLUSIVE or NOT JUDGEABLE: idrift.verdicts.gate_word, the one rule."""
        from idrift.verdicts import gate_word

        return gate_word(self)

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def rule(self) -> str:
        m = _num(self.margin if self.margin is not None else self.tolerance)
        if self.direction == "higher_is_better":
            return f"fails when the interval lies entirely below -{m}"
        if self.direction == "lower_is_better":
            return f"fails when the interval lies entirely above +{m}"
        if self.margin == 0 and self.method.startswith("exact"):
            return "fails on any difference (exact golden values)"
        return f"fails when the interval lies entirely outside [-{m}, +{m}]"

    def message(self) -> str:
        """What a failing test prints: claim, baseline, candidate, difference, interval, tolerance."""
        if self.tolerance_kind == "relative":
            tol = f"{self.tolerance * 100:g}% relative (= {_num(self.margin)})"
        else:
            tol = f"{_num(self.tolerance)} absolute"
        interval = "-" if self.interval is None else f"[{_num(self.interval[0])}, {_num(self.interval[1])}]"
        lines = [
            f"{self.word}: {self.claim} / {self.metric}",
            f"  baseline    {_num(self.baseline)}" + (f"  (n={self.baseline_n})" if self.baseline_n is not None else ""),
            f"  candidate   {_num(self.candidate)}" + (f"  (n={self.n})" if self.n is not None else ""),
            f"  difference  {_num(self.difference)}  (candidate - baseline)",
            f"  interval    {interval}" + (f"  {self.method}" if self.method else ""),
            f"  tolerance   {tol}, {self.direction}: {self.rule()}",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def as_row(self) -> dict:
        lo, hi = self.interval if self.interval is not None else (None, None)
        return {
            "claim": self.claim,
            "metric": self.metric,
            "status": self.status,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "difference": self.difference,
            "ci_low": lo,
            "ci_high": hi,
            "tolerance": self.tolerance,
            "tolerance_kind": self.tolerance_kind,
            "margin": self.margin,
            "direction": self.direction,
            "n": self.n,
            "baseline_n": self.baseline_n,
            "method": self.method,
            "notes": "; ".join(self.notes),
        }


# ------------------------------------------------------------------------------------------- helpers


def _check_rule(tolerance: float, direction: str, tolerance_kind: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if tolerance_kind not in TOLERANCE_KINDS:
        raise ValueError(f"tolerance_kind must be one of {TOLERANCE_KINDS}, got {tolerance_kind!r}")
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")


def tolerance_margin(tolerance: float, tolerance_kind: str, baseline_value: float) -> float:
    """The tolerance in the metric's units."""
    return tolerance * abs(baseline_value) if tolerance_kind == "relative" else tolerance


def fails(lo, hi, margin: float, direction: str):
    """The gate's rule on an interval of (candidate - baseline). Works on arrays (the simulation)."""
    if direction == "higher_is_better":
        return hi < -margin
    if direction == "lower_is_better":
        return lo > margin
    return (lo > margin) | (hi < -margin)


_KEY = re.compile(r"^([^|]+)\|([^|]+)\|(-?\d+)\|([^|]+)$")


def seed_cluster(key: str) -> str:
    """'identity|prompt|seed|config' -> 'identity|prompt|config'; any other key is its own cluster."""
    m = _KEY.match(key)
    return f"{m.group(1)}|{m.group(2)}|{m.group(4)}" if m else key


def _short(keys: list[str], k: int = 3) -> str:
    return ", ".join(keys[:k]) + (f", ... ({len(keys)} in all)" if len(keys) > k else "")


# ----------------------------------------------------------------------------------------------- gates


def paired_gate(
    candidate: Mapping[str, float],
    baseline: Mapping[str, float],
    *,
    tolerance: float,
    direction: str,
    tolerance_kind: str = "absolute",
    confidence: float = CONFIDENCE,
    n_resamples: int = 9999,
    seed: int = 0,
    method: str = "percentile",
    average_seeds: bool = True,
    claim: str = "",
    metric: str = "",
) -> Verdict:
    """Paired comparison of per-sample values; see the module docstring for the rule.

    The interval is a bootstrap CI of the mean of d = candidate - baseline over the pairs
    (resampling pairs keeps the pairing); `method` as in `mean_interval`.

    With `average_seeds`, the differences of the seeds of one (identity, prompt, config) are
    averaged into one pair (a cluster bootstrap): treating seeds as independent would make the
    interval too narrow. With one seed per pair it changes nothing.
    """
    _check_rule(tolerance, direction, tolerance_kind)
    notes: list[str] = []
    missing_in_candidate = sorted(set(baseline) - set(candidate))
    missing_in_baseline = sorted(set(candidate) - set(baseline))
    if missing_in_candidate:
        notes.append(f"{len(missing_in_candidate)} baseline sample(s) missing from this run: {_short(missing_in_candidate)}")
    if missing_in_baseline:
        notes.append(f"{len(missing_in_baseline)} sample(s) of this run not in the baseline: {_short(missing_in_baseline)}")

    common = sorted(set(candidate) & set(baseline))
    nonfinite = [k for k in common if not (math.isfinite(candidate[k]) and math.isfinite(baseline[k]))]
    if nonfinite:
        notes.append(f"{len(nonfinite)} pair(s) dropped for NaN/inf (failed samples): {_short(nonfinite)}")
    dropped = set(nonfinite)
    keys = [k for k in common if k not in dropped]

    # Cluster: average candidate and baseline over the seeds of one (identity, prompt, config).
    groups: dict[str, list[str]] = defaultdict(list)
    for k in keys:
        groups[seed_cluster(k) if average_seeds else k].append(k)
    names = sorted(groups)
    c = np.array([np.mean([candidate[k] for k in groups[g]]) for g in names], dtype=float)
    b = np.array([np.mean([baseline[k] for k in groups[g]]) for g in names], dtype=float)
    seeds_per = sorted({len(groups[g]) for g in names})
    if seeds_per and seeds_per != [1]:
        span = str(seeds_per[0]) if len(seeds_per) == 1 else f"{seeds_per[0]}-{seeds_per[-1]}"
        notes.append(f"{span} seeds averaged per (identity, prompt)")

    n = len(names)
    base_mean = float(b.mean()) if n else None
    cand_mean = float(c.mean()) if n else None
    margin = tolerance_margin(tolerance, tolerance_kind, base_mean) if n else None
    verdict = Verdict(
        claim=claim, metric=metric, status="insufficient", baseline=base_mean, candidate=cand_mean,
        difference=None if n == 0 else cand_mean - base_mean, interval=None, tolerance=tolerance,
        direction=direction, n=n, notes=notes, tolerance_kind=tolerance_kind, margin=margin,
        missing_in_candidate=missing_in_candidate, missing_in_baseline=missing_in_baseline,
    )
    if direction == "equal" and margin == 0 and n >= 1:
        # Golden values: any difference is a failure. Checked per raw pair, because averaging
        # seeds could cancel a +x and a -x.
        raw = np.array([candidate[k] - baseline[k] for k in keys])
        verdict.interval = (float(raw.min()), float(raw.max()))
        verdict.method = "exact: min and max of the per-sample differences"
        differing = [k for k, d in zip(keys, raw) if d != 0]
        verdict.status = "fail" if differing else "pass"
        if differing:
            notes.append(f"{len(differing)} of {len(keys)} samples differ: {_short(differing)}")
        return verdict

    if n < 2:
        notes.append(f"only {n} usable pair(s); a paired comparison needs at least 2 (check the keys match)")
        return verdict

    d = c - b
    lo, hi = mean_interval(d, confidence=confidence, n_resamples=n_resamples, method=method, seed=seed)
    verdict.interval = (float(lo), float(hi))
    verdict.method = f"{confidence:.0%} {method} bootstrap CI of the mean paired difference"
    if n < 10:
        notes.append(f"only {n} pairs: bootstrap intervals are too narrow below about 10; add samples")
    verdict.status = "fail" if fails(lo, hi, margin, direction) else "pass"
    return verdict


def band_gate(
    candidate_aggregate: float,
    baseline_aggregate: float,
    *,
    tolerance: float,
    direction: str,
    tolerance_kind: str = "absolute",
    candidate_sem: float | None = None,
    candidate_interval: tuple[float, float] | None = None,
    confidence: float = CONFIDENCE,
    n: int | None = None,
    baseline_n: int | None = None,
    claim: str = "",
    metric: str = "",
) -> Verdict:
    """Aggregate-only baselines (no per-sample values, e.g. the paper's): a tolerance band.

    With the candidate's own interval (its bootstrap CI, idrift.stats), the interval of the
    difference is that interval minus the baseline; else with its standard error, difference +-
    z * sem (normal approximation of a mean); a noisy candidate is then failed only when clearly
    outside the band. Without either, the interval is the point. `n` is the candidate's n,
    `baseline_n` the n the baseline states.
    """
    _check_rule(tolerance, direction, tolerance_kind)
    margin = tolerance_margin(tolerance, tolerance_kind, baseline_aggregate)
    verdict = Verdict(
        claim=claim, metric=metric, status="fail", baseline=float(baseline_aggregate),
        candidate=float(candidate_aggregate), difference=None, interval=None, tolerance=tolerance,
        direction=direction, n=n, tolerance_kind=tolerance_kind, margin=margin, baseline_n=baseline_n,
    )
    if not math.isfinite(candidate_aggregate):
        verdict.notes.append("the candidate value is NaN/inf: the measurement failed")
        return verdict
    diff = float(candidate_aggregate - baseline_aggregate)
    verdict.difference = diff
    if candidate_interval is not None and candidate_interval[0] < candidate_interval[1]:
        verdict.interval = (float(candidate_interval[0] - baseline_aggregate), float(candidate_interval[1] - baseline_aggregate))
        verdict.method = f"{confidence:.0%} interval of the candidate (its bootstrap), minus the baseline"
    elif candidate_sem is not None and candidate_sem > 0:
        half = float(stats.norm.ppf(0.5 + confidence / 2)) * candidate_sem
        verdict.interval = (diff - half, diff + half)
        verdict.method = f"{confidence:.0%} normal interval from the candidate's standard error {_num(candidate_sem)}"
    else:
        verdict.interval = (diff, diff)
        verdict.method = "point (no standard error given)"
        if direction == "equal" and margin == 0:
            verdict.method = "exact: point comparison"
    verdict.status = "fail" if fails(verdict.interval[0], verdict.interval[1], margin, direction) else "pass"
    return verdict


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
    _check_rule(tolerance, direction, tolerance_kind)
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


def _gpu_model(name: str | None) -> str | None:
    return " ".join(name.lower().split()) if name else None


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
    _check_rule(tolerance, direction, tolerance_kind)
    times = _as_samples(candidate_seconds)
    cand = float(times.mean()) if times.size else float("nan")
    same = _gpu_model(candidate_gpu) is not None and _gpu_model(candidate_gpu) == _gpu_model(baseline_gpu)
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
        verdict.status = "fail" if fails(verdict.interval[0], verdict.interval[1], verdict.margin, direction) else "pass"
        return verdict
    return band_gate(
        cand, baseline_seconds, tolerance=tolerance, direction=direction, tolerance_kind=tolerance_kind,
        n=int(times.size), claim=claim, metric=metric,
    )


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


# -------------------------------------------------------------------------------------------- provenance


def _major_minor(version: str) -> str:
    m = re.match(r"^\s*(\d+)\.(\d+)", version)
    return f"{m.group(1)}.{m.group(2)}" if m else version.strip()


def provenance_mismatches(baseline_prov: Mapping, run_prov: Mapping) -> list[str]:
    """What differs between where the baseline came from and this run, one line each.

    Unknown on either side (the paper records no package versions or fingerprints) is not a
    mismatch: only what both sides record is compared.
    """
    out: list[str] = []
    bp, rp = baseline_prov.get("profile"), run_prov.get("profile")
    if bp and rp and bp != rp:
        out.append(f"profile: baseline {bp!r}, this run {rp!r}")
    bg, rg = baseline_prov.get("gpu"), run_prov.get("gpu")
    if _gpu_model(bg) != _gpu_model(rg):
        out.append(f"gpu: baseline {bg or 'none (CPU)'!s}, this run {rg or 'none (CPU)'!s}")
    bw, rw = baseline_prov.get("weights") or {}, run_prov.get("weights") or {}
    if bw and rw:
        for comp in sorted(bw.keys() | rw.keys()):
            if bw.get(comp) != rw.get(comp):
                out.append(
                    f"weights.{comp}: baseline {bw.get(comp, '(not recorded)')}, this run {rw.get(comp, '(not recorded)')}"
                )
    bpk, rpk = baseline_prov.get("packages") or {}, run_prov.get("packages") or {}
    for name in KEY_PACKAGES:
        if name in bpk and name in rpk and _major_minor(bpk[name]) != _major_minor(rpk[name]):
            out.append(f"packages.{name}: baseline {bpk[name]}, this run {rpk[name]}")
    ba, ra = _acceleration(baseline_prov), _acceleration(run_prov)
    if ba != ra:
        lossy = " (lossy: its numbers deviate from the reference path)" if "lossy" in ra else ""
        out.append(f"acceleration: baseline {ba}, this run {ra}{lossy}")
    return out


def _acceleration(prov: Mapping) -> str:
    """The acceleration label a provenance records (idrift.accel.plan.AccelerationPlan.label). Not recorded means
    eager: every baseline and run made before acceleration was recorded (and the paper's) used no speed-up."""
    acceleration = prov.get("acceleration") or {}
    return acceleration.get("spec_label") or acceleration.get("label") or "eager"
