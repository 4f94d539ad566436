"""The claims a scored folder can be judged on, built from what its manifest holds.

The paper's claims (idrift.claims) compare arms of idrift's own pipeline. A scored folder holds other
methods' images, so its claims compare methods, with the same engine: `MethodArm`s group the scored
samples (idrift.evaluate.arm_of matches RunSpec.method), the two summaries below are registered in
idrift.evaluate.SUMMARIES, and evaluate() gives every figure its interval and check_expectations its word.

    score_methods  every method against the reference method (the first in the manifest, or
                   --reference), paired by identity, prompt and seed like the paper's Table 1:
                   id_sim[M], lpips[M], clip_t[M], detection_rate[M], and id_sim_delta[M], lpips_delta[M],
                   clip_t_delta[M] (M minus the reference). Expected: each method more identity-faithful than
                   the reference
                   (id_sim_delta > 0, lpips_delta < 0), judged on the real profile. A method with several
                   step budgets is compared at its largest.
    score_drift    each method scored at two or more step budgets, like the paper's Figure 5: id_sim[M-K]
                   per budget K, peak_step[M], id_sim_at_peak[M], drop[M] (peak minus the largest
                   budget). Expected: drop[M] > 0, the paper's drift asked of that method.

The claims' arms are written into results.json ("scored"), so a scored folder read back
(idrift.scoring.folder) rebuilds the very claims it was judged on.
"""

from __future__ import annotations

from dataclasses import dataclass

from idrift.claims import REAL_ONLY, Arm, Claim, Expect, Samples
from idrift.evaluate.figures import drift_figures, paired_delta, put_figure, put_per_arm, step_curve
from idrift.evaluate.records import ClaimResult, Table
from idrift.evaluate.summaries import SUMMARIES

SCORE_METHODS = "score_methods"
SCORE_DRIFT = "score_drift"
SCORE_CLAIM_IDS = (SCORE_METHODS, SCORE_DRIFT)  # idrift.baselines.schema.SCORED_IDS
# What each scored image is measured on (pixels are always measured). clip_t: text alignment, a registered
# metric (idrift.metrics.REGISTRY), whose clip_t[<arm>] figures idrift.evaluate adds to every summary.
SCORE_METRICS = ("id_sim", "lpips", "clip_t")


@dataclass(frozen=True)
class MethodArm(Arm):
    """One scored method at one step budget (0: the manifest gave none). Its spec fields are those of a
    scored RunSpec (backbone "", guidance and alpha 0), so only `method` and `steps` tell arms apart."""

    method: str = ""
    show_steps: bool = False  # name "pulid-28" (a drift curve's point) rather than "pulid"

    @property
    def name(self) -> str:
        return f"{self.method}-{self.steps}" if self.show_steps else self.method


def method_arm(method: str, steps: int, show_steps: bool = False) -> MethodArm:
    return MethodArm(backbone="", steps=steps, alpha=0.0, guidance=0.0, method=method, show_steps=show_steps)


def summary_methods(result: ClaimResult, table: Table) -> None:
    arms = result.claim.arms
    put_per_arm(result, table, SCORE_METRICS)
    reference = arms[0].name
    for arm in arms[1:]:
        for metric in SCORE_METRICS:
            put_figure(result, f"{metric}_delta[{arm.name}]",
                 paired_delta(table.values(reference, metric), table.values(arm.name, metric)))


def summary_method_drift(result: ClaimResult, table: Table) -> None:
    put_per_arm(result, table, ("id_sim",))
    methods = dict.fromkeys(arm.method for arm in result.claim.arms)
    for method in methods:
        curve = step_curve(table, [arm for arm in result.claim.arms if arm.method == method])
        for name, value in drift_figures(curve).items():
            result.figures[f"{name}[{method}]"] = float(value)


SUMMARIES.setdefault("methods", summary_methods)
SUMMARIES.setdefault("method_drift", summary_method_drift)


def _samples(identities: int, seeds: tuple[int, ...], prompts: tuple[str, ...]) -> Samples:
    """The claim's samples as the folder has them: the same in either tier (nothing is subsampled)."""
    return Samples(prompts=prompts, identities={"smoke": identities, "full": identities},
                   seeds={"smoke": seeds, "full": seeds})


def build_claims(arms: dict[str, list[list]], identities: int, seeds: list[int], prompts: list[str]) -> list[Claim]:
    """The claims of results.json's "scored" entry: {claim id: [[method, steps], ...]} (reference method first)."""
    samples = _samples(identities, tuple(seeds), tuple(prompts))
    out = []
    if SCORE_METHODS in arms:
        chosen = tuple(method_arm(m, s) for m, s in arms[SCORE_METHODS])
        reference = chosen[0].method
        expectations = tuple(e for arm in chosen[1:] for e in (
            Expect(f"id_sim_delta[{arm.name}]", ">", 0.0, REAL_ONLY,
                   why=f"{arm.name} more identity-faithful than {reference} (paired as in Table 1)"),
            Expect(f"lpips_delta[{arm.name}]", "<", 0.0, REAL_ONLY, why=f"{arm.name} closer to the reference photo")))
        out.append(Claim(
            id=SCORE_METHODS, family="score", title=f"each scored method against {reference}",
            paper="Table 1 (its shape)", protocol=f"scored images paired by identity, prompt and seed; "
            f"methods {', '.join(a.method for a in chosen)}", arms=chosen, samples=samples, summary="methods",
            expectations=expectations, metrics=SCORE_METRICS))
    if SCORE_DRIFT in arms:
        chosen = tuple(method_arm(m, s, show_steps=True) for m, s in arms[SCORE_DRIFT])
        methods = tuple(dict.fromkeys(a.method for a in chosen))
        out.append(Claim(
            id=SCORE_DRIFT, family="score", title="ID_sim of each scored method over its step budgets",
            paper="Figure 5 (its shape)",
            protocol=f"scored images at several step budgets; methods {', '.join(methods)}",
            arms=chosen, samples=samples, summary="method_drift",
            expectations=tuple(Expect(f"drop[{m}]", ">", 0.0, REAL_ONLY,
                                      why="ID_sim falls from its peak to the largest budget (the paper's drift)")
                               for m in methods),
            metrics=("id_sim",)))
    return out


def plan_arms(budgets: dict[str, list[int]], reference: str | None = None) -> dict[str, list[list]]:
    """{method: its step budgets (0 = none given)}, in manifest order -> the "scored" arms entry.
    Raises ValueError for a reference method the manifest does not hold."""
    methods = list(budgets)
    if reference is not None:
        if reference not in budgets:
            raise ValueError(f"--reference {reference!r} is not a method of the manifest (it has {', '.join(methods)})")
        methods.remove(reference)
        methods.insert(0, reference)
    arms = {SCORE_METHODS: [[m, max(budgets[m])] for m in methods]}
    drift = [[m, s] for m in methods if len([s for s in budgets[m] if s]) >= 2 for s in sorted(budgets[m]) if s]
    if drift:
        arms[SCORE_DRIFT] = drift
    return arms
