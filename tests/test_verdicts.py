"""The one verdict rule (idrift.verdicts, docs/verdicts.md) on constructed per-sample records.

The records stand in for measurements of the `real` profile (no real weights here): per-sample
ID_sim values with a chosen paired effect and noise. Everything else is the real code: evaluate's
intervals (the gate's seed-clustered bootstrap), check_expectations, the gate, the simulation.
"""

from __future__ import annotations

import numpy as np
import pytest

from idrift import verdicts
from idrift.baselines.gate import compare_metric
from idrift.baselines.io import MetricBaseline, load_baseline
from idrift.baselines.judge import gate_row_status
from idrift.baselines.simulate import simulate_verdict, tier_decides, tier_power
from idrift.baselines.update import RULES
from idrift.claims import CLAIMS, CLAIMS_BY_ID
from idrift.evaluate import check_expectations, claim_line, evaluate
from idrift.session import REPO_BASELINES
from idrift.stats import Figure, mean_figure, median_figure, ratio_figure
from idrift.verdicts import SKIP_REASONS

SWAP = CLAIMS_BY_ID["table1_backbone_swap"]


def swap_records(effect: float, sd: float, identities: int = 28, seeds: int = 1, rng_seed: int = 0) -> list[dict]:
    """dev-28 and schnell-4 records over identities x 3 prompts x seeds: schnell's ID_sim is dev's plus
    `effect` plus noise of sd `sd` per sample; LPIPS 0.02 lower for schnell with the same noise."""
    rng = np.random.default_rng(rng_seed)
    out = []
    for i in range(identities):
        for prompt in ("portrait", "beach", "suit"):
            for seed in range(seeds):
                base = 0.58 + 0.05 * rng.standard_normal()
                noise = sd * rng.standard_normal()
                for backbone, steps, guidance in (("dev", 28, 3.5), ("schnell", 4, 0.0)):
                    is_schnell = backbone == "schnell"
                    spec = {"backbone": backbone, "steps": steps, "alpha": 1.0, "mode": "budget", "guidance": guidance,
                            "identity": f"id{i}", "prompt_id": prompt, "seed": seed}
                    out.append({"spec": spec, "status": "ok", "metrics": {
                        "id_sim": {"id_sim": base + (effect + noise if is_schnell else 0.0)},
                        "lpips": {"lpips": 0.72 - (0.02 - noise if is_schnell else 0.0)},
                        "pixels": {"pixel_mean": 100.0, "sha256": "x"}}})
    return out


def outcome(records, metric="id_sim_delta", profile="real"):
    outcomes = check_expectations(evaluate(SWAP, records), profile, SKIP_REASONS)
    return next(o for o in outcomes if o.expect.metric == metric), outcomes


def test_pass_when_the_interval_lies_above_the_bound():
    o, _ = outcome(swap_records(effect=0.03, sd=0.05))
    assert o.status == verdicts.PASS and o.figure.ci[0] > 0, o.line(SWAP.id)
    assert o.figure.n == 84 and "clusters" in o.figure.method


def test_fail_when_the_interval_lies_below_the_bound():
    o, _ = outcome(swap_records(effect=-0.03, sd=0.05))
    assert o.status == verdicts.FAIL and o.figure.ci[1] <= 0, o.line(SWAP.id)


def test_inconclusive_when_it_straddles_and_the_line_says_what_would_decide_it():
    """The point check this replaces passed +0.0001; the interval straddles 0, so INCONCLUSIVE."""
    records = swap_records(effect=0.0, sd=0.08, identities=2)
    o, _ = outcome(records)
    assert o.figure.ci[0] < 0 < o.figure.ci[1]
    assert o.status == verdicts.INCONCLUSIVE, o.line(SWAP.id)
    assert "minimum detectable effect" in o.reason and "at n=6" in o.reason and "about n=" in o.reason


def test_not_judgeable_on_a_profile_of_random_weights():
    o, outcomes = outcome(swap_records(effect=0.03, sd=0.05), profile="tiny")
    assert o.status == verdicts.NOT_JUDGEABLE and "--idrift-profile real" in o.reason
    assert claim_line(SWAP, outcomes).startswith("table1_backbone_swap: NOT JUDGEABLE (identity NOT JUDGEABLE; LPIPS")


def test_claim_word_is_the_worst_part_and_the_line_shows_each_part():
    claim = CLAIMS_BY_ID["figure5_guidance"]
    records = []
    for g in (0.0, 0.5, 1.0, 2.0, 3.5):
        for i in range(2):
            for prompt in ("portrait", "beach", "suit"):
                records.append({"spec": {"backbone": "schnell", "steps": 4, "alpha": 1.0, "mode": "budget",
                                         "guidance": g, "identity": f"id{i}", "prompt_id": prompt, "seed": 0},
                                "status": "ok",
                                "metrics": {"id_sim": {"id_sim": None},
                                            "pixels": {"pixel_mean": 90.0, "sha256": f"{i}{prompt}"}}})
    outcomes = check_expectations(evaluate(claim, records), "tiny", SKIP_REASONS)
    assert claim_line(claim, outcomes).startswith(
        "figure5_guidance: NOT JUDGEABLE (structural PASS; identity NOT JUDGEABLE)")
    records[0]["metrics"]["pixels"]["sha256"] = "changed"  # one image moves with guidance: the structure breaks
    outcomes = check_expectations(evaluate(claim, records), "tiny", SKIP_REASONS)
    assert claim_line(claim, outcomes, "smoke").startswith(
        "figure5_guidance: FAIL (structural FAIL; identity NOT JUDGEABLE); exact checks")
    assert verdicts.worst([verdicts.PASS, verdicts.INCONCLUSIVE, verdicts.NOT_JUDGEABLE]) == verdicts.INCONCLUSIVE


@pytest.mark.parametrize("words,strict,require_real,status", [
    (["PASS", "NOT JUDGEABLE", "not informative"], False, False, 0),
    (["PASS", "FAIL"], False, False, 1),
    (["PASS", "INCONCLUSIVE"], False, False, 0),
    (["PASS", "INCONCLUSIVE"], True, False, 1),
    (["NOT JUDGEABLE"], False, True, 1),
])
def test_exit_status(words, strict, require_real, status):
    assert verdicts.exit_status(words, strict=strict, require_real=require_real) == status


def test_decide_exact_and_without_an_interval():
    assert verdicts.decide("==", 0.0, Figure(0.0, exact=True))[0] == verdicts.PASS
    assert verdicts.decide("==", 0.0, Figure(1.0, exact=True))[0] == verdicts.FAIL
    word, why = verdicts.decide(">", 0.0, Figure(0.2, n=1))
    assert word == verdicts.INCONCLUSIVE and "n=1" in why  # one sample: no interval, never a PASS
    assert verdicts.decide(">", 0.0, None)[0] == verdicts.FAIL


def test_means_are_clustered_by_identity_and_prompt():
    samples = {f"id{i}|p|{s}": float(i) + 0.01 * s for i in range(5) for s in range(4)}
    figure = mean_figure(samples)
    assert figure.n == 5 and "4 seeds averaged" in figure.method
    assert figure.ci[0] < figure.value < figure.ci[1]



def test_a_speedup_from_timed_rounds_has_an_interval_and_is_decided():
    """The latency claim's speed-up (dev-28 / schnell-4, five timed rounds each, as on a GPU): the rounds
    are its units, so a clear 5.8x decides `speedup >= 4`, and two arms that time alike do not."""
    dev28 = [6.25, 6.30, 6.27, 6.33, 6.29]
    schnell4 = [1.07, 1.08, 1.08, 1.07, 1.09]
    speedup = ratio_figure(dev28, schnell4)
    assert speedup.value == pytest.approx(6.29 / 1.08)
    assert speedup.ci[0] < speedup.value < speedup.ci[1] and speedup.n == 5
    assert verdicts.decide(">=", 4.0, speedup)[0] == verdicts.PASS
    assert verdicts.decide(">=", 4.0, ratio_figure([1.0, 1.3, 0.9], [1.1, 0.9, 1.2]))[0] == verdicts.FAIL
    median = median_figure(schnell4)
    assert median.value == 1.08 and median.ci[0] <= 1.08 <= median.ci[1]
    assert median_figure([1.0]).ci is None  # one round: no interval

# ------------------------------------------------------------------------------------------- the simulation


def test_false_pass_rate_at_true_effect_zero_is_at_most_two_and_a_half_percent():
    for n, seeds in ((84, 4), (6, 1)):
        r = simulate_verdict(n, seeds, 0.0, trials=400, n_resamples=999, rng_seed=1)
        assert r["pass_ci"][0] <= 0.025 and r["pass_rate"] <= 0.05, r


def test_power_at_the_papers_effect_full_tier_decides_smoke_does_not():
    full = simulate_verdict(84, 4, 0.028, trials=200, n_resamples=999, rng_seed=2)
    smoke = simulate_verdict(6, 1, 0.028, trials=200, n_resamples=999, rng_seed=3)
    assert full["pass_rate"] >= 0.9 and smoke["pass_rate"] < 0.5, (full, smoke)
    assert tier_power(SWAP, "full") >= 0.9 > tier_power(SWAP, "smoke")
    assert tier_decides(SWAP, "full").startswith("the full tier can decide it")
    assert tier_decides(SWAP, "smoke").startswith("the smoke tier cannot decide it")


def test_simulation_cli_has_a_test_sized_run(capsys):
    from idrift.baselines.simulate import main

    assert main(["--quick", "--only", "claims"]) == 0
    out = capsys.readouterr().out
    assert "false PASS (effect 0)" in out and "table1_backbone_swap     full" in out


# ---------------------------------------------------------------------------------------------- the gate


def test_band_gate_labels_the_candidates_n_and_the_baselines_n():
    """Issue 23: a 6-pair run against the paper printed 'candidate 0 (n=84)'."""
    base = MetricBaseline(aggregate=0.028, n=84, tolerance=0.02, tolerance_kind="absolute",
                          direction="higher_is_better", unit="cosine")
    v = compare_metric("table1_backbone_swap", "id_sim_delta", base, candidate_aggregate=0.01,
                       candidate_interval=(-0.02, 0.04), candidate_n=6)
    assert v.n == 6 and v.baseline_n == 84
    msg = v.message()
    assert "candidate   0.01  (n=6)" in msg and "baseline    0.028  (n=84)" in msg
    assert v.interval == pytest.approx((-0.048, 0.012)) and v.word == verdicts.INCONCLUSIVE


def test_gate_rows_of_random_weights_are_not_judgeable_or_not_informative():
    base = MetricBaseline(aggregate=0.0, n=6, tolerance=1e-3, tolerance_kind="absolute", direction="equal",
                          unit="cosine", samples={f"id{i}|p|0|c": 0.0 for i in range(6)})
    zero = mean_figure({f"id{i}|p|0": 0.0 for i in range(6)})
    v = compare_metric("c", "id_sim[dev-28]", base, candidate_aggregate=0.0,
                       candidate_samples={f"id{i}|p|0|c": 0.0 for i in range(6)})
    gate_row_status(v, zero, "tiny", "tiny", base)
    assert v.word == verdicts.NOT_INFORMATIVE  # faceless 0 against 0: cannot move, not a pass
    v = compare_metric("c", "id_sim[dev-28]", base, candidate_aggregate=0.0, candidate_n=6)
    gate_row_status(v, zero, "tiny", "paper", base)
    assert v.word == verdicts.NOT_JUDGEABLE and not v.failed
    v = compare_metric("c", "pixel_mean[dev-28]", base, candidate_aggregate=0.0,
                       candidate_samples={f"id{i}|p|0|c": 0.0 for i in range(6)})
    gate_row_status(v, zero, "tiny", "tiny", base)
    assert v.word == verdicts.PASS  # golden pixel values stay a regression check


# ------------------------------------------------------------------------------------------ directions


def test_directions_are_declared_once_and_everyone_agrees():
    one_sided = {">": verdicts.HIGHER, ">=": verdicts.HIGHER, "<": verdicts.LOWER, "<=": verdicts.LOWER}
    for claim in CLAIMS:
        for e in claim.expectations:
            if e.op in one_sided:
                assert e.direction == one_sided[e.op], (claim.id, str(e))
    for prefix, _, rule in RULES:
        if rule is not None and rule.direction != "equal" and prefix:
            assert rule.direction == verdicts.direction_of(prefix), prefix
    for baseline in ("paper", "tiny-cpu", "h100-synthetic"):
        for claim_id, claim in load_baseline(REPO_BASELINES / f"{baseline}.json").claims.items():
            for metric, m in claim.metrics.items():
                if m.direction != "equal":
                    assert m.direction == verdicts.direction_of(metric), (baseline, claim_id, metric)
