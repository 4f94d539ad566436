"""How good is the paired gate? Measured by simulation, on the gate's own interval and rule.

False alarms: the candidate is the baseline plus pure noise (true shift 0); how often does the
gate fail? Power: the candidate's ID_sim is truly lower by 0.02; how often does it fail?

Each trial draws `n_pairs` paired differences; with `seeds_per_pair = k`, each pair is the mean
of k single-seed differences (what `paired_gate` does with several seeds per identity and prompt),
so its sd is sd / sqrt(k). `sd` is the sd of ONE single-seed difference. Averaging seeds only
removes the part of the variance that changes with the seed; the simulation assumes all of it does.

The trials run through `idrift.stats.mean_interval` and `idrift.baselines.verdict.fails`, the
functions `paired_gate` uses, vectorised over trials and with the same resamples (same seed, same
batches): a trial's interval is the one `paired_gate` would compute on that data.

The claims' verdicts (idrift.verdicts) get the same treatment (`simulate_verdict`, the table
"claims" below): a claim's figure is PASS when its interval (idrift.stats.mean_figure's, the same
bootstrap, at least the t interval) lies above 0. At true effect 0 a PASS is a false PASS
(at most (1 - CONFIDENCE) / 2 = 2.5 %, one-sided); at the paper's effects (PAPER_EFFECTS) the PASS
rate is the power of the tier's design (identities x prompts clusters, seeds averaged per cluster).
`tier_decides` states it on each claim's line (normal theory, instant).

    python -m idrift.baselines.simulate                 # both tables (1000 trials a cell)
    python -m idrift.baselines.simulate --trials 200    # quicker, rougher
    python -m idrift.baselines.simulate --quick         # a test-sized run: 100 trials, 999 resamples
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
from scipy import stats

from idrift.baselines.verdict import fails
from idrift.stats import CONFIDENCE, Figure, clustered_interval, mean_interval, power_one_sided

_CHUNK = 250  # trials per vectorised bootstrap call: bounds memory to a few tens of MB


def _noise(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-sd noise."""
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "t4":
        # Heavy tails (an occasional lost face); t with 4 df has variance 2.
        return rng.standard_t(4, shape) / math.sqrt(2.0)
    raise ValueError(f"noise must be 'normal' or 't4', got {kind!r}")


def normal_theory_rate(n_pairs: int, sd_pair: float, true_shift: float, tolerance: float,
                       direction: str = "higher_is_better", confidence: float = CONFIDENCE) -> float:
    """The fail rate if the mean difference were exactly normal with a known sd: a cross-check."""
    se = sd_pair / math.sqrt(n_pairs)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    below = float(stats.norm.cdf((-tolerance - true_shift) / se - z))  # P(hi < -tol)
    above = float(stats.norm.cdf((true_shift - tolerance) / se - z))  # P(lo > +tol)
    return {"higher_is_better": below, "lower_is_better": above, "equal": below + above}[direction]


def simulate_gate(
    n_pairs: int,
    sd: float,
    true_shift: float,
    tolerance: float,
    trials: int,
    seeds_per_pair: int = 1,
    rng_seed: int = 0,
    *,
    direction: str = "higher_is_better",
    confidence: float = CONFIDENCE,
    n_resamples: int = 9999,
    method: str = "percentile",
    noise: str = "normal",
    gate_seed: int = 0,
) -> dict:
    """Fail rate of the paired gate over `trials` simulated comparisons.

    Returns rate, trials, fails, rate_ci (95% Clopper-Pearson interval of the rate: Monte Carlo
    error), normal_theory (the same rate from a normal approximation), and the inputs.
    """
    if n_pairs < 2 or trials < 1 or seeds_per_pair < 1 or sd < 0:
        raise ValueError("need n_pairs >= 2, trials >= 1, seeds_per_pair >= 1 and sd >= 0")
    rng = np.random.default_rng(rng_seed)
    n_fail = 0
    for start in range(0, trials, _CHUNK):
        m = min(_CHUNK, trials - start)
        per_seed = true_shift + sd * _noise(rng, noise, (m, n_pairs, seeds_per_pair))
        d = per_seed.mean(axis=-1)  # the pair's difference, averaged over its seeds
        lo, hi = mean_interval(d, confidence=confidence, n_resamples=n_resamples, method=method, seed=gate_seed)
        n_fail += int(np.sum(fails(lo, hi, tolerance, direction)))
    sd_pair = sd / math.sqrt(seeds_per_pair)
    ci = stats.binomtest(n_fail, trials).proportion_ci(confidence_level=0.95, method="exact")
    return {
        "rate": n_fail / trials,
        "trials": trials,
        "fails": n_fail,
        "rate_ci": (float(ci.low), float(ci.high)),
        "normal_theory": normal_theory_rate(n_pairs, sd_pair, true_shift, tolerance, direction, confidence),
        "n_pairs": n_pairs,
        "sd": sd,
        "seeds_per_pair": seeds_per_pair,
        "sd_pair": sd_pair,
        "se": sd_pair / math.sqrt(n_pairs),
        "true_shift": true_shift,
        "tolerance": tolerance,
        "direction": direction,
        "confidence": confidence,
        "method": method,
        "noise": noise,
    }


# ------------------------------------------------------------------------------------ claims' verdicts

# The paper's effects a claim must PASS: (figure, effect, where the paper states it). The drop is
# modelled as the mean of per-sample (peak-step value - 28-step value) differences.
PAPER_EFFECTS = {
    "table1_backbone_swap": ("id_sim_delta", 0.028, "Table 1: schnell-4 0.615 vs dev-28 0.5872"),
    "table1_dev4_diagnostic": ("id_sim_delta", 0.021, "Table 1 dagger: dev-4 0.6085 vs dev-28 0.5872"),
    "figure5_drift": ("drop", 0.066, "Figure 5: 0.609 at the peak, 0.543 at 28 steps"),
}
SD = 0.08  # sd of one single-seed paired difference of ID_sim (the README's gate simulation)


def design(claim, tier: str) -> tuple[int, int]:
    """(independent (identity, prompt) clusters, seeds per cluster) of a claim at a tier."""
    from idrift.data.prompts import load_prompt_set

    prompts = (len(claim.samples.prompts) if claim.samples.prompts
               else len(load_prompt_set(claim.samples.prompt_set).prompts))
    return claim.samples.identities[tier] * prompts, len(claim.samples.seeds[tier])


def tier_power(claim, tier: str, sd: float = SD, confidence: float = CONFIDENCE) -> float | None:
    """Power to PASS the paper's effect at this tier (normal theory), None where no effect is modelled."""
    if claim.id not in PAPER_EFFECTS:
        return None
    _, effect, _ = PAPER_EFFECTS[claim.id]
    n, seeds = design(claim, tier)
    return power_one_sided(effect, sd / math.sqrt(seeds) / math.sqrt(n), n=n, confidence=confidence)


def tier_decides(claim, tier: str) -> str:
    """One phrase for a claim's line: can this tier decide it?"""
    if all(e.op == "==" for e in claim.expectations):
        return "exact checks: any tier decides them"
    power = tier_power(claim, tier)
    if power is None:
        return f"the {tier} tier's power is not simulated for this claim"
    metric, effect, _ = PAPER_EFFECTS[claim.id]
    n, seeds = design(claim, tier)
    can = "can" if power >= 0.8 else "cannot"
    return (f"the {tier} tier {can} decide it (power {power:.0%} to PASS the paper's {metric} {effect:+g} "
            f"at {n} pairs x {seeds} seed(s), sd {SD:g})")


def simulate_verdict(
    n_clusters: int, seeds: int, effect: float, trials: int, *, sd: float = SD, rng_seed: int = 0,
    n_resamples: int = 9999, confidence: float = CONFIDENCE, noise: str = "normal",
) -> dict:
    """How often a claim `figure > 0` comes out PASS, FAIL and INCONCLUSIVE at true `effect`.

    Each trial draws n_clusters x seeds single-seed differences (effect + sd x noise), averages the
    seeds of each cluster, and words the figure with idrift.verdicts.decide on the interval that
    idrift.stats.mean_figure gives it (clustered_interval, same resamples).
    """
    from idrift.verdicts import FAIL, PASS, decide

    if n_clusters < 2 or trials < 1 or seeds < 1:
        raise ValueError("need n_clusters >= 2, trials >= 1 and seeds >= 1")
    rng = np.random.default_rng(rng_seed)
    counts = {"PASS": 0, "FAIL": 0, "INCONCLUSIVE": 0}
    for start in range(0, trials, _CHUNK):
        m = min(_CHUNK, trials - start)
        x = (effect + sd * _noise(rng, noise, (m, n_clusters, seeds))).mean(axis=-1)
        lo, hi = clustered_interval(x, confidence=confidence, n_resamples=n_resamples)
        for value, a, b in zip(x.mean(axis=-1), np.atleast_1d(lo), np.atleast_1d(hi)):
            word, _ = decide(">", 0.0, Figure(float(value), n_clusters, None, (float(a), float(b))))
            counts[word] += 1
    ci = stats.binomtest(counts[PASS], trials).proportion_ci(confidence_level=0.95, method="exact")
    return {"pass_rate": counts[PASS] / trials, "pass_ci": (float(ci.low), float(ci.high)),
            "fail_rate": counts[FAIL] / trials, "counts": counts, "trials": trials, "n_clusters": n_clusters,
            "seeds": seeds, "effect": effect, "sd": sd,
            "normal_theory": power_one_sided(effect, sd / math.sqrt(seeds) / math.sqrt(n_clusters), n=n_clusters,
                                             confidence=confidence)}


def claims_table(trials: int, n_resamples: int, rng_seed: int = 0, noise: str = "normal") -> list[str]:
    """The README's table: false-PASS rate at effect 0 and power at the paper's effect, smoke and full."""
    from idrift.claims import CLAIMS_BY_ID

    lines = [f"claims: PASS rate of `figure > 0` (95% bootstrap interval above 0), sd {SD:g} per single-seed "
             f"difference, {noise} noise, {trials} trials, {n_resamples} resamples; "
             "'normal': the same from normal theory with the t bound. Target: false PASS <= 2.5%, power >= 80%.",
             f"{'claim':24} {'tier':5} {'pairs x seeds':>13}  {'false PASS (effect 0)':>24}  "
             f"{'power (paper effect)':>28}  {'normal':>6}  decides"]
    for claim_id, (metric, effect, _) in PAPER_EFFECTS.items():
        claim = CLAIMS_BY_ID[claim_id]
        for tier in ("smoke", "full"):
            n, seeds = design(claim, tier)
            zero = simulate_verdict(n, seeds, 0.0, trials, rng_seed=rng_seed, n_resamples=n_resamples, noise=noise)
            power = simulate_verdict(n, seeds, effect, trials, rng_seed=rng_seed + 1, n_resamples=n_resamples,
                                     noise=noise)
            rng_seed += 2
            lines.append(
                f"{claim_id:24} {tier:5} {f'{n} x {seeds}':>13}  "
                f"{zero['pass_rate']:6.1%} [{zero['pass_ci'][0]:5.1%},{zero['pass_ci'][1]:5.1%}]  "
                f"{metric} {effect:+.3f}: "
                f"{power['pass_rate']:6.1%} [{power['pass_ci'][0]:5.1%},{power['pass_ci'][1]:5.1%}]  "
                f"{power['normal_theory']:6.1%}  {'yes' if power['pass_rate'] >= 0.8 else 'no'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m idrift.baselines.simulate",
        description="False-alarm rate and power of the paired ID_sim gate (higher_is_better), by simulation.",
    )
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--n-pairs", type=int, default=84, help="(identity, prompt) pairs; the paper has 84")
    parser.add_argument("--sds", type=float, nargs="+", default=[0.05, 0.065, 0.08],
                        help="sd of one single-seed paired difference")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 4], help="seeds per pair")
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.0, 0.005, 0.01])
    parser.add_argument("--drop", type=float, default=0.02, help="true ID_sim drop the gate must catch")
    parser.add_argument("--n-resamples", type=int, default=9999)
    parser.add_argument("--method", default="percentile", choices=["percentile", "BCa", "basic"])
    parser.add_argument("--noise", default="normal", choices=["normal", "t4"])
    parser.add_argument("--rng-seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="test-sized: 100 trials, 999 resamples, one gate cell")
    parser.add_argument("--only", choices=["gate", "claims", "both"], default="both", help="which table(s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.n_resamples, args.sds, args.seeds, args.tolerances = 100, 999, [0.08], [1], [0.005]
    if args.only in ("claims", "both"):
        print("\n".join(claims_table(args.trials, args.n_resamples, args.rng_seed, args.noise)), flush=True)
        if args.only == "claims":
            return 0
        print()

    print(f"paired gate, higher_is_better, n_pairs={args.n_pairs}, 95% {args.method} bootstrap "
          f"({args.n_resamples} resamples), {args.noise} noise, {args.trials} trials per cell")
    print("false alarm: true shift 0; size@tol: true shift = -tol (worst case that should pass); "
          f"power: true shift -{args.drop:g}. Targets: false alarm <= 5%, power >= 80%. [95% Monte Carlo CI]")
    header = (f"{'tol':>6} {'sd':>6} {'k':>2} {'sd/vk':>7} {'SE':>7}  "
              f"{'false alarm':>19}  {'size@tol':>19}  {'power':>19}  {'normal':>6}  both")
    print(header)
    print("-" * len(header))
    t0 = time.time()
    seed = args.rng_seed
    common = {"n_resamples": args.n_resamples, "method": args.method, "noise": args.noise}

    def cell(r: dict) -> str:
        return f"{r['rate']:6.1%} [{r['rate_ci'][0]:5.1%},{r['rate_ci'][1]:5.1%}]"

    for tol in args.tolerances:
        for sd in args.sds:
            for k in args.seeds:
                fa = simulate_gate(args.n_pairs, sd, 0.0, tol, args.trials, k, seed, **common)
                size = fa if tol == 0 else simulate_gate(args.n_pairs, sd, -tol, tol, args.trials, k, seed + 1,
                                                         **common)
                pw = simulate_gate(args.n_pairs, sd, -args.drop, tol, args.trials, k, seed + 2, **common)
                seed += 3
                ok = "yes" if fa["rate"] <= 0.05 and pw["rate"] >= 0.80 else "no"
                print(f"{tol:6.3f} {sd:6.3f} {k:2d} {fa['sd_pair']:7.4f} {fa['se']:7.4f}  {cell(fa)}  {cell(size)}"
                      f"  {cell(pw)}  {pw['normal_theory']:6.1%}  {ok}", flush=True)
    print(f"({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
