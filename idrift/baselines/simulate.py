"""How good is the paired gate? Measured by simulation, on the gate's own interval and rule.

False alarms: the candidate is the baseline plus pure noise (true shift 0); how often does the
gate fail? Power: the candidate's ID_sim is truly lower by 0.02; how often does it fail?

Each trial draws `n_pairs` paired differences; with `seeds_per_pair = k`, each pair is the mean
of k single-seed differences (what `paired_gate` does with several seeds per identity and prompt),
so its sd is sd / sqrt(k). `sd` is the sd of ONE single-seed difference. Averaging seeds only
removes the part of the variance that changes with the seed; the simulation assumes all of it does.

The trials run through `gate.mean_interval` and `gate.fails`, the functions `paired_gate` uses,
vectorised over trials and with the same resamples (same seed, same batches): a trial's interval
is the one `paired_gate` would compute on that data.

    python -m idrift.baselines.simulate                 # the full table (1000 trials a cell)
    python -m idrift.baselines.simulate --trials 200    # quicker, rougher
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
from scipy import stats

from idrift.baselines.gate import fails, mean_interval

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
                       direction: str = "higher_is_better", confidence: float = 0.95) -> float:
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
    confidence: float = 0.95,
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
    args = parser.parse_args(argv)

    print(f"paired gate, higher_is_better, n_pairs={args.n_pairs}, 95% {args.method} bootstrap "
          f"({args.n_resamples} resamples), {args.noise} noise, {args.trials} trials per cell")
    print("false alarm: true shift 0; size@tol: true shift = -tol (worst case that should pass); "
          f"power: true shift -{args.drop:g}. Targets: false alarm <= 5%, power >= 80%. [95% Monte Carlo CI]")
    header = f"{'tol':>6} {'sd':>6} {'k':>2} {'sd/vk':>7} {'SE':>7}  {'false alarm':>19}  {'size@tol':>19}  {'power':>19}  {'normal':>6}  both"
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
                size = fa if tol == 0 else simulate_gate(args.n_pairs, sd, -tol, tol, args.trials, k, seed + 1, **common)
                pw = simulate_gate(args.n_pairs, sd, -args.drop, tol, args.trials, k, seed + 2, **common)
                seed += 3
                ok = "yes" if fa["rate"] <= 0.05 and pw["rate"] >= 0.80 else "no"
                print(f"{tol:6.3f} {sd:6.3f} {k:2d} {fa['sd_pair']:7.4f} {fa['se']:7.4f}  {cell(fa)}  {cell(size)}"
                      f"  {cell(pw)}  {pw['normal_theory']:6.1%}  {ok}", flush=True)
    print(f"({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
