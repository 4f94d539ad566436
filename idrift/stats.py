"""Figures with their uncertainty: one confidence level, one seed-clustered bootstrap.

Every figure a claim derives is a `Figure`: its value, n (independent units behind it), standard
error and a CONFIDENCE interval. Means over samples (id_sim[dev-28], id_sim_delta, ...) use the
regression gate's own interval (`mean_interval`: scipy.stats.bootstrap, percentile) over clusters:
the seeds of one (identity, prompt) are averaged first, because they share the identity and the
prompt and are not independent samples. Figures that are not means (peak step, drop, a Spearman
correlation, a fraction of identities, a minimum over prompts) are recomputed on identities drawn
with replacement (`identity_bootstrap`), and their `method` says so.

`mde` is the minimum detectable effect: the true effect that a one-sided test at this standard
error reaches with POWER (80 %), and `n_to_decide` the n at which an effect would be decided.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95  # every interval of idrift: the gate's, the claims', the simulation's
POWER = 0.80  # the power the minimum detectable effect is quoted at
# Resamples are drawn in batches of this size. Fixed, so that one paired_gate call and the
# vectorised simulation (idrift.baselines.simulate) draw the very same resamples for a seed.
BOOTSTRAP_BATCH = 100
N_RESAMPLES = 9999  # means: cheap, vectorised
N_IDENTITY_RESAMPLES = 200  # recomputed summaries: each resample re-runs a claim's summary


def z(confidence: float = CONFIDENCE) -> float:
    """Two-sided normal quantile: 1.96 at 95 %."""
    return float(stats.norm.ppf(0.5 + confidence / 2))


def mean_interval(
    x, *, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, method: str = "percentile", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap CI of the mean of `x` along its last axis (one row per independent problem).

    Percentile by default, not BCa. Simulated at n = 84 both give the same false-alarm rate and
    power (python -m idrift.baselines.simulate --method BCa), but BCa's bias correction counts
    resampled means that tie with the observed mean, and regression runs are full of ties
    (unchanged samples give a difference of exactly 0): float rounding then moves BCa's interval
    by more than a real shift (29 zeros and one 0.03: shifting every value up by 0.001 LOWERED the
    BCa upper bound from 0.0048 to 0.0040), so a better candidate could fail. The percentile
    interval moves exactly with the data, which keeps the gate monotone.
    Where every value in a row is equal, the interval is the point itself (scipy would warn and
    return NaN); a row BCa cannot do falls back to percentile.
    """
    x = np.asarray(x, dtype=float)
    constant = np.all(x == x[..., :1], axis=-1)

    def run(data, how):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.bootstrap(
                (data,), np.mean, axis=-1, vectorized=True, paired=False, confidence_level=confidence,
                n_resamples=n_resamples, method=how, batch=BOOTSTRAP_BATCH, rng=np.random.default_rng(seed),
            )
        return np.asarray(res.confidence_interval.low, float), np.asarray(res.confidence_interval.high, float)

    if np.all(constant):
        point = x.mean(axis=-1)
        return np.asarray(point, float), np.asarray(point, float)
    lo, hi = run(x, method)
    point = x.mean(axis=-1)
    lo, hi = np.where(constant, point, lo), np.where(constant, point, hi)
    broken = (np.isnan(lo) | np.isnan(hi)) & ~constant
    if np.any(broken):
        plo, phi = run(x[broken] if x.ndim > 1 else x, "percentile")
        if x.ndim > 1:
            lo[broken], hi[broken] = plo, phi
        else:
            lo, hi = plo, phi
    return lo, hi


def t_half_width(sem, n, confidence: float = CONFIDENCE):
    """Half-width of the Student-t interval: t(n-1) x sem."""
    return stats.t.ppf(0.5 + confidence / 2, np.maximum(np.asarray(n) - 1, 1)) * sem


def clustered_interval(x, *, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = 0):
    """The interval of a mean over independent clusters (last axis): the gate's percentile bootstrap,
    widened to at least the Student-t interval. The percentile bootstrap alone is too narrow at small
    n (simulated: 26 % false PASS at 2 clusters, 6 % at 6, where 2.5 % is the aim); the t interval
    keeps the one-sided error at (1 - confidence) / 2 there, and at n >= ~30 the two agree."""
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    lo, hi = mean_interval(x, confidence=confidence, n_resamples=n_resamples, seed=seed)
    mean, sem = x.mean(axis=-1), x.std(axis=-1, ddof=1) / math.sqrt(n)
    half = t_half_width(sem, n, confidence)
    return np.minimum(lo, mean - half), np.maximum(hi, mean + half)


def cluster_of(key: str) -> str:
    """The independent unit of a sample key: its (identity, prompt[, config]) without the seed.

    'identity|prompt|seed' (a claim's samples) -> 'identity|prompt';
    'identity|prompt|seed|config' (a baseline's samples) -> 'identity|prompt|config'; other keys are their own.
    """
    parts = key.split("|")
    if len(parts) == 3 and parts[2].lstrip("-").isdigit():
        return f"{parts[0]}|{parts[1]}"
    if len(parts) == 4 and parts[2].lstrip("-").isdigit():
        return f"{parts[0]}|{parts[1]}|{parts[3]}"
    return key


def cluster_means(samples: Mapping[str, float]) -> dict[str, float]:
    groups: dict[str, list[float]] = defaultdict(list)
    for key in sorted(samples):
        groups[cluster_of(key)].append(float(samples[key]))
    return {g: float(np.mean(v)) for g, v in groups.items()}


@dataclass(frozen=True)
class Figure:
    """A derived figure with its uncertainty. `ci` is None where it cannot be had (n < 2)."""

    value: float
    n: int | None = None  # independent units: (identity, prompt) clusters, or identities
    sem: float | None = None
    ci: tuple[float, float] | None = None
    method: str = ""
    exact: bool = False  # a count or a bitwise equality: no sampling error to speak of

    @property
    def constant(self) -> bool:
        """The interval is the point: every unit gave the same value (e.g. identity of faceless images)."""
        return self.ci is not None and self.ci[0] == self.ci[1] == self.value

    def as_dict(self) -> dict:
        return {"value": self.value, "n": self.n, "sem": self.sem,
                "ci_low": None if self.ci is None else self.ci[0],
                "ci_high": None if self.ci is None else self.ci[1], "method": self.method, "exact": self.exact}

    @classmethod
    def from_dict(cls, d: Mapping) -> Figure:
        ci = None if d.get("ci_low") is None else (float(d["ci_low"]), float(d["ci_high"]))
        return cls(float(d["value"]), d.get("n"), d.get("sem"), ci, d.get("method", ""), bool(d.get("exact", False)))

    def text(self, digits: int = 4) -> str:
        """'0.012 [−0.01, 0.03], n=6' for a verdict line."""
        if self.exact:
            return f"{self.value:.{digits}g} (exact)"
        ci = ("no interval" if self.ci is None
              else f"{CONFIDENCE:.0%} CI [{self.ci[0]:.{digits}g}, {self.ci[1]:.{digits}g}]")
        return f"{self.value:.{digits}g}, {ci}, n={self.n}"


def exact(value: float, n: int | None = None) -> Figure:
    return Figure(float(value), n, 0.0, (float(value), float(value)), "exact", exact=True)


def mean_figure(samples: Mapping[str, float], *, confidence: float = CONFIDENCE, seed: int = 0) -> Figure:
    """The mean of per-sample values, clustered by (identity, prompt): value, n, sem and the gate's interval."""
    clusters = cluster_means(samples)
    x = np.array(list(clusters.values()), dtype=float)
    value = float(np.mean(list(samples.values())))  # the figure the baseline stores: mean over samples
    n = len(x)
    if n < 2:
        return Figure(value, n, None, None, "one (identity, prompt): no interval")
    sem = float(np.std(x, ddof=1) / math.sqrt(n))
    lo, hi = clustered_interval(x, confidence=confidence, seed=seed)
    seeds = len(samples) / n
    how = (f"{confidence:.0%} percentile bootstrap of the mean over {n} (identity, prompt) clusters, "
           "at least the Student-t interval")
    if seeds > 1:
        how += f", {seeds:g} seeds averaged per cluster"
    return Figure(value, n, sem, (float(lo), float(hi)), how)


def identity_bootstrap(
    identities: list[str], statistic: Callable[[list[str]], Mapping[str, float]], values: Mapping[str, float], *,
    confidence: float = CONFIDENCE, n_resamples: int = N_IDENTITY_RESAMPLES, seed: int = 0,
) -> dict[str, Figure]:
    """Intervals of figures that are not means: `statistic` recomputed on identities drawn with replacement.

    `statistic(drawn)` gets a list of identity names (repeats allowed, each repeat a separate identity)
    and returns the figures it can compute on that draw; a figure missing or undefined on a draw is
    left out of that draw. Percentile interval of the draws (widened to hold the figure itself), sem =
    their sd. Drawn here rather than by scipy.stats.bootstrap because a figure can be undefined on
    some draws (a rank correlation of a constant curve).
    """
    n = len(identities)
    if n < 2:
        return {m: Figure(v, n, None, None, f"{n} identity: no interval") for m, v in values.items()}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {m: [] for m in values}
    for _ in range(n_resamples):
        out = statistic([identities[i] for i in rng.integers(0, n, n)])
        for m in values:
            x = out.get(m)
            if x is not None and math.isfinite(x):
                draws[m].append(float(x))
    alpha = (1 - confidence) / 2
    figures = {}
    for m, value in values.items():
        a = np.asarray(draws[m])
        if len(a) < n_resamples // 2:
            figures[m] = Figure(value, n, None, None, f"undefined on most identity draws ({len(a)}/{n_resamples})")
            continue
        lo, hi = (float(v) for v in np.quantile(a, [alpha, 1 - alpha]))
        # The bootstrap's sd underestimates the standard error by sqrt((n-1)/n); with the t quantile
        # the interval is not too narrow at a handful of identities (see clustered_interval).
        sem = float(np.std(a, ddof=1) * math.sqrt(n / (n - 1)))
        half = float(t_half_width(sem, n, confidence))
        figures[m] = Figure(value, n, sem, (min(lo, value - half), max(hi, value + half)),
                            f"{confidence:.0%} percentile bootstrap over {n} identities ({n_resamples} draws), "
                            "at least the Student-t interval")
    return figures


def _timing_bootstrap(data: tuple, statistic, confidence: float, seed: int, n_resamples: int = N_RESAMPLES):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        # Percentile: BCa's jackknife over small, unpaired samples of timings is unstable.
        res = stats.bootstrap(data, statistic, vectorized=True, paired=False, confidence_level=confidence,
                              n_resamples=n_resamples, method="percentile", batch=BOOTSTRAP_BATCH,
                              rng=np.random.default_rng(seed))
    return float(res.standard_error), (float(res.confidence_interval.low), float(res.confidence_interval.high))


def median_figure(seconds, *, confidence: float = CONFIDENCE, seed: int = 0) -> Figure:
    """The median of repeated timings (latency rounds), with a percentile bootstrap over the rounds."""
    x = np.atleast_1d(np.asarray(seconds, float))
    value = float(np.median(x))
    if x.size < 2 or np.all(x == x[0]):
        return Figure(value, int(x.size), None, None, "too few timings for an interval")
    sem, ci = _timing_bootstrap((x,), lambda a, axis: np.median(a, axis=axis), confidence, seed)
    return Figure(value, int(x.size), sem, ci,
                  f"{confidence:.0%} percentile bootstrap of the median over {x.size} rounds")


def ratio_figure(numerator, denominator, *, center=np.median, confidence: float = CONFIDENCE,
                 n_resamples: int = N_RESAMPLES, seed: int = 0) -> Figure:
    """center(numerator) / center(denominator) (a speed-up from repeated timings of two arms in one run),
    the arms' rounds resampled independently. The claim's figure is the ratio of medians; the regression
    gate (idrift.baselines.timing.ratio_gate) takes the ratio of means."""
    num, den = np.atleast_1d(np.asarray(numerator, float)), np.atleast_1d(np.asarray(denominator, float))
    value = float(center(num) / center(den))
    n = int(min(num.size, den.size))
    if n < 2 or (np.all(num == num[0]) and np.all(den == den[0])):
        return Figure(value, n, None, None, "too few timings for an interval")
    sem, ci = _timing_bootstrap((num, den), lambda a, b, axis: center(a, axis=axis) / center(b, axis=axis),
                                confidence, seed, n_resamples)
    return Figure(value, n, sem, ci, f"{confidence:.0%} percentile bootstrap of the ratio of {center.__name__} "
                  f"timings ({num.size} and {den.size} rounds)")


def mde(sem: float, *, confidence: float = CONFIDENCE, power: float = POWER) -> float:
    """Smallest true effect a one-sided test at level (1-confidence)/2 detects with `power`, at this sem."""
    return (z(confidence) + float(stats.norm.ppf(power))) * sem


def n_to_decide(
    n: int, sem: float, effect: float, *, confidence: float = CONFIDENCE, power: float = POWER
) -> int | None:
    """Independent units at which `effect` is detected with `power` (sem shrinks as 1/sqrt(n))."""
    if not effect or not sem or not n:
        return None
    return int(math.ceil(n * (mde(sem, confidence=confidence, power=power) / abs(effect)) ** 2))


def power_one_sided(effect: float, se: float, *, n: int | None = None, confidence: float = CONFIDENCE) -> float:
    """P(the interval's lower bound > 0) when the estimate is normal around `effect` with standard error
    `se`; with `n`, the bound is the Student-t one of clustered_interval (normal theory otherwise)."""
    if se <= 0:
        return 1.0 if effect > 0 else 0.0
    q = z(confidence) if n is None else float(stats.t.ppf(0.5 + confidence / 2, max(n - 1, 1)))
    return float(stats.norm.cdf(effect / se - q))
