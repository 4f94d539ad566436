"""The paired gate: per-sample values of a run against a baseline's, paired by key.

Keys are 'identity|prompt|seed|config'. The interval is a bootstrap CI of the mean paired difference
(scipy.stats.bootstrap, percentile; see idrift.stats.mean_interval). Seeds of one (identity, prompt)
are averaged first: they share the identity and prompt, so they are not independent samples.
Golden values (direction 'equal', margin 0) are compared exactly, pair by pair.

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

import numpy as np

from idrift.baselines.verdict import Verdict, check_rule, fails, tolerance_margin
from idrift.stats import CONFIDENCE, mean_interval

_KEY = re.compile(r"^([^|]+)\|([^|]+)\|(-?\d+)\|([^|]+)$")


def seed_cluster(key: str) -> str:
    """'identity|prompt|seed|config' -> 'identity|prompt|config'; any other key is its own cluster."""
    m = _KEY.match(key)
    return f"{m.group(1)}|{m.group(2)}|{m.group(4)}" if m else key


def _short(keys: list[str], k: int = 3) -> str:
    return ", ".join(keys[:k]) + (f", ... ({len(keys)} in all)" if len(keys) > k else "")


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
    """Paired comparison of per-sample values; see idrift.baselines.gate for the rule.

    The interval is a bootstrap CI of the mean of d = candidate - baseline over the pairs
    (resampling pairs keeps the pairing); `method` as in `mean_interval`.

    With `average_seeds`, the differences of the seeds of one (identity, prompt, config) are
    averaged into one pair (a cluster bootstrap): treating seeds as independent would make the
    interval too narrow. With one seed per pair it changes nothing.
    """
    check_rule(tolerance, direction, tolerance_kind)
    notes: list[str] = []
    missing_in_candidate, missing_in_baseline = _unmatched(candidate, baseline, notes)
    keys = _usable_keys(candidate, baseline, notes)
    c, b = _seed_means(candidate, baseline, keys, average_seeds, notes)

    n = len(c)
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
        return _exact(verdict, candidate, baseline, keys)
    if n < 2:
        notes.append(f"only {n} usable pair(s); a paired comparison needs at least 2 (check the keys match)")
        return verdict
    return _bootstrap(verdict, c - b, confidence=confidence, n_resamples=n_resamples, method=method, seed=seed)


def _unmatched(
    candidate: Mapping[str, float], baseline: Mapping[str, float], notes: list[str]
) -> tuple[list[str], list[str]]:
    """The baseline keys the run lacks and the run keys the baseline lacks, each noted when any."""
    missing_in_candidate = sorted(set(baseline) - set(candidate))
    missing_in_baseline = sorted(set(candidate) - set(baseline))
    if missing_in_candidate:
        notes.append(
            f"{len(missing_in_candidate)} baseline sample(s) missing from this run: {_short(missing_in_candidate)}"
        )
    if missing_in_baseline:
        notes.append(
            f"{len(missing_in_baseline)} sample(s) of this run not in the baseline: {_short(missing_in_baseline)}"
        )
    return missing_in_candidate, missing_in_baseline


def _usable_keys(candidate: Mapping[str, float], baseline: Mapping[str, float], notes: list[str]) -> list[str]:
    """The keys on both sides, sorted, less the pairs with a NaN/inf on either side (failed samples)."""
    common = sorted(set(candidate) & set(baseline))
    nonfinite = [k for k in common if not (math.isfinite(candidate[k]) and math.isfinite(baseline[k]))]
    if nonfinite:
        notes.append(f"{len(nonfinite)} pair(s) dropped for NaN/inf (failed samples): {_short(nonfinite)}")
    dropped = set(nonfinite)
    return [k for k in common if k not in dropped]


def _seed_means(
    candidate: Mapping[str, float],
    baseline: Mapping[str, float],
    keys: list[str],
    average_seeds: bool,
    notes: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate and baseline per pair: averaged over the seeds of one (identity, prompt, config)
    with `average_seeds`, else one pair per key; in the order of the sorted pair names."""
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
    return c, b


def _exact(
    verdict: Verdict, candidate: Mapping[str, float], baseline: Mapping[str, float], keys: list[str]
) -> Verdict:
    """Golden values: any difference is a failure. Checked per raw pair, because averaging
    seeds could cancel a +x and a -x."""
    raw = np.array([candidate[k] - baseline[k] for k in keys])
    verdict.interval = (float(raw.min()), float(raw.max()))
    verdict.method = "exact: min and max of the per-sample differences"
    differing = [k for k, d in zip(keys, raw) if d != 0]
    verdict.status = "fail" if differing else "pass"
    if differing:
        verdict.notes.append(f"{len(differing)} of {len(keys)} samples differ: {_short(differing)}")
    return verdict


def _bootstrap(
    verdict: Verdict, d: np.ndarray, *, confidence: float, n_resamples: int, method: str, seed: int
) -> Verdict:
    """The bootstrap CI of the mean paired difference `d` (one value per pair), judged by the rule."""
    lo, hi = mean_interval(d, confidence=confidence, n_resamples=n_resamples, method=method, seed=seed)
    verdict.interval = (float(lo), float(hi))
    verdict.method = f"{confidence:.0%} {method} bootstrap CI of the mean paired difference"
    if verdict.n < 10:
        verdict.notes.append(f"only {verdict.n} pairs: bootstrap intervals are too narrow below about 10; add samples")
    verdict.status = "fail" if fails(lo, hi, verdict.margin, verdict.direction) else "pass"
    return verdict
