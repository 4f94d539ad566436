"""The words idrift says about a claim or a metric, decided in one place (docs/verdicts.md).

    PASS           the figure's interval lies on the claimed side of the bound
    FAIL           it lies on the other side
    INCONCLUSIVE   it straddles the bound: more samples would decide it (the line says how many)
    NOT JUDGEABLE  this profile cannot judge it (random weights make no faces), with the reason

Structural checks (bitwise equalities, counts of differing images) are exact: PASS or FAIL. A
claim's word is the worst of its parts' words (FAIL > INCONCLUSIVE > NOT JUDGEABLE > PASS), and its
line shows each part: "structural PASS; identity NOT JUDGEABLE". Gate rows (a run against a
baseline) use the same rule on the interval of (candidate - baseline) against the tolerance, plus
"not informative" for a value that cannot move on this profile (identity of faceless images).

Exit status (`exit_status`): 1 on any FAIL; INCONCLUSIVE is 0 unless strict; NOT JUDGEABLE is 0
unless require_real. Every caller (the pytest plugin, `idrift run`, `idrift compare`, `idrift
report`) goes through these functions, so one run gets one word per claim and metric everywhere.

Metric directions are declared once, in METRICS: the claims' expectations, the gate and the
bless rules (idrift.baselines.update) read them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and scipy load only when a figure is judged: `idrift --help` stays light
    from idrift.stats import Figure

PASS, FAIL, INCONCLUSIVE, NOT_JUDGEABLE = "PASS", "FAIL", "INCONCLUSIVE", "NOT JUDGEABLE"
NOT_INFORMATIVE = "not informative"  # gate rows only: the value cannot move on this profile
WORDS = (PASS, FAIL, INCONCLUSIVE, NOT_JUDGEABLE)
SEVERITY = {FAIL: 3, INCONCLUSIVE: 2, NOT_JUDGEABLE: 1, NOT_INFORMATIVE: 0, PASS: 0}
_OLD = {"pass": PASS, "fail": FAIL, "skip": NOT_JUDGEABLE, "inconclusive": INCONCLUSIVE,
        "not judgeable": NOT_JUDGEABLE, "insufficient": INCONCLUSIVE, "not comparable": NOT_JUDGEABLE}

# Why a profile cannot judge identity and LPIPS claims, and what to do: printed once per skipped claim.
SKIP_REASONS = {
    "tiny": "tiny random models make no faces: identity/LPIPS claims need --idrift-profile real with the FLUX, "
            "InfiniteYou and antelopev2 weights (see `idrift weights check`)",
    "synthetic": "synthetic random weights make no faces: identity/LPIPS claims need --idrift-profile real with "
                 "the FLUX, InfiniteYou and antelopev2 weights (see `idrift weights check`)",
}

HIGHER, LOWER, EQUAL = "higher_is_better", "lower_is_better", "equal"
# (metric-id prefix, direction, part). First match wins; "trajectory_" figures are read without it.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("trajectory_final_mismatches", EQUAL, "structural"),
    ("samples_varying_with_guidance", EQUAL, "structural"),
    ("latency_s", LOWER, "latency"),
    ("speedup", HIGHER, "latency"),
    ("compile_s", LOWER, "latency"),  # the fast paths' costs (baselines/h200-synthetic.json)
    ("blocks_compile_s", LOWER, "latency"),
    ("gpu_peak_gb", LOWER, "latency"),
    ("latent_rel_diff", LOWER, "pixels"),  # a lossy path's deviation from the reference
    ("trajectory_ratio", LOWER, "pixels"),
    ("reference_diff", LOWER, "pixels"),  # a fast path's image against the eager path's (fast_paths)
    ("lpips", LOWER, "LPIPS"),
    ("clip_t", HIGHER, "text alignment"),  # CLIP-T and its gain over steps (text_identity_competition)
    ("drift_gain", HIGHER, "text alignment"),  # drift against CLIP-T gain across the prompt tiers
    ("pixel_mean", EQUAL, "pixels"),
    ("peak_step", LOWER, "identity"),
    ("max_peak_step", LOWER, "identity"),
    ("id_sim_range", LOWER, "identity"),
    ("schnell_drift", LOWER, "identity"),
    ("n_identities", EQUAL, "count"),
    ("backend_agreement_n", EQUAL, "count"),
    ("", HIGHER, "identity"),  # id_sim, deltas, drops, drifts, fractions, rank correlations
)
STRUCTURAL = "structural"


def _entry(metric: str) -> tuple[str, str, str]:
    keep = ("trajectory_final_mismatches", "trajectory_ratio")
    name = metric[len("trajectory_"):] if metric.startswith("trajectory_") and not metric.startswith(keep) else metric
    return next(e for e in METRICS if name.startswith(e[0]))


def direction_of(metric: str) -> str:
    """higher_is_better, lower_is_better or equal, declared once for every metric id."""
    return _entry(metric)[1]


def part_of(metric: str) -> str:
    """structural, identity, LPIPS, text alignment, latency, pixels or count: the part of a claim a metric judges."""
    return _entry(metric)[2]


def normalize(word: str) -> str:
    """A word as it is printed; the lower-case statuses of older results.json files mapped onto the four."""
    return word if word in WORDS or word == NOT_INFORMATIVE else _OLD.get(word, word)


# ------------------------------------------------------------------------------------------ the rule


def decide(op: str, bound: float, figure: Figure | None) -> tuple[str, str]:
    """THE rule: the word for `figure op bound`, and why. `op` is >, >=, <, <=, == (exact) or
    'within' (|figure| <= bound, two-sided). Exact figures are judged on their value; others on
    their interval: on the claimed side PASS, on the other side FAIL, straddling INCONCLUSIVE."""
    if figure is None:
        return FAIL, "not measured: no samples produced this figure"
    v = figure.value
    if op == "==" or figure.exact:
        lo = hi = v
        if op == "==":
            return (PASS, "") if v == bound else (FAIL, f"{v:.6g} != {bound:g} (exact)")
    elif figure.ci is None:
        return INCONCLUSIVE, f"no interval at n={figure.n}: needs at least 2 independent units"
    else:
        lo, hi = figure.ci
    if op in (">", ">="):
        good, bad = (lo > bound, hi <= bound) if op == ">" else (lo >= bound, hi < bound)
    elif op in ("<", "<="):
        good, bad = (hi < bound, lo >= bound) if op == "<" else (hi <= bound, lo > bound)
    elif op == "within":
        good, bad = (lo >= -bound and hi <= bound), (lo > bound or hi < -bound)
    else:
        raise ValueError(f"unknown op {op!r}")
    if good:
        return PASS, ""
    if bad:
        return FAIL, ""
    return INCONCLUSIVE, inconclusive_reason(op, bound, figure)


def inconclusive_reason(op: str, bound: float, figure: Figure) -> str:
    """What would decide it: the minimum detectable effect at this n and the n for the observed effect."""
    from idrift.stats import CONFIDENCE, mde, n_to_decide

    ci = f"[{figure.ci[0]:.4g}, {figure.ci[1]:.4g}]" if figure.ci else "-"
    text = f"the {CONFIDENCE:.0%} interval {ci} straddles {bound:g}"
    if figure.sem:
        text += f"; minimum detectable effect {mde(figure.sem):.3g} at n={figure.n}"
        effect = abs(figure.value - (0.0 if op == "within" else bound))
        need = n_to_decide(figure.n or 0, figure.sem, effect)
        if need:
            text += f"; about n={need} would decide an effect of {effect:.3g}"
    return text


def gate_word(verdict) -> str:
    """The word of a regression-gate verdict (idrift.baselines.verdict.Verdict), by `decide`: the interval
    of (candidate - baseline) against the tolerance margin on the side the direction allows."""
    status = verdict.status
    if status in ("not judgeable", "not comparable"):
        return NOT_JUDGEABLE
    if status == "not informative":
        return NOT_INFORMATIVE
    if status == "insufficient" or verdict.interval is None:
        return INCONCLUSIVE
    if verdict.method.startswith("exact"):
        return PASS if status == "pass" else FAIL
    from idrift.stats import Figure

    margin = verdict.margin if verdict.margin is not None else verdict.tolerance
    op, bound = {HIGHER: (">=", -margin), LOWER: ("<=", margin), EQUAL: ("within", margin)}[verdict.direction]
    word, _ = decide(op, bound, Figure(verdict.difference, verdict.n, None, verdict.interval))
    return word


# ------------------------------------------------------------------------------------------- claims


def worst(words: Iterable[str]) -> str:
    words = [normalize(w) for w in words]
    return max(words, key=lambda w: SEVERITY.get(w, 0)) if words else NOT_JUDGEABLE


def claim_word(words: Iterable[str], require_real: bool = False) -> str:
    """A claim's word: the worst of its parts; under require_real, NOT JUDGEABLE counts as FAIL."""
    word = worst(words)
    return FAIL if require_real and word == NOT_JUDGEABLE else word


def parts_text(parts: Iterable[tuple[str, str]]) -> str:
    """[(part, word), ...] -> 'structural PASS; identity NOT JUDGEABLE' (one word per part, the worst)."""
    by_part: dict[str, list[str]] = {}
    for part, word in parts:
        by_part.setdefault(part, []).append(word)
    return "; ".join(f"{part} {worst(words)}" for part, words in by_part.items())


def exit_status(words: Iterable[str], *, strict: bool = False, require_real: bool = False) -> int:
    """1 on a FAIL (a claim refuted or a regression); INCONCLUSIVE too under strict; NOT JUDGEABLE too
    under require_real; else 0."""
    bad = {FAIL} | ({INCONCLUSIVE} if strict else set()) | ({NOT_JUDGEABLE} if require_real else set())
    return 1 if any(normalize(w) in bad for w in words) else 0
