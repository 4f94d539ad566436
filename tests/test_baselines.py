"""Baseline files (schema, load, write, diff) and the regression gate, on real files and real bootstraps."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idrift.baselines.band import band_gate
from idrift.baselines.gate import compare_metric
from idrift.baselines.io import (
    Baseline,
    ClaimBaseline,
    MetricBaseline,
    diff_baselines,
    load_baseline,
    resolve_baseline,
    write_baseline,
)
from idrift.baselines.paired import paired_gate
from idrift.baselines.provenance import provenance_mismatches
from idrift.baselines.schema import SCHEMA_VERSION
from idrift.baselines.timing import absolute_latency_gate, ratio_gate
from idrift.baselines.verdict import Verdict
from idrift.claims import CLAIMS
from idrift.errors import BaselineError

REPO = Path(__file__).resolve().parents[1]
BASELINES = REPO / "baselines"
PAPER = BASELINES / "paper.json"
# The paper's numbers as transcribed beside the design card (shared/paper_claims.json), copied into the repository.
PAPER_CLAIMS = REPO / "tests" / "data" / "paper_claims.json"

FAST = {"n_resamples": 999}  # bootstrap resamples for tests: plenty for pass/fail far from the edge


def keys(n: int, seeds: int = 1, config: str = "schnell-4-g0-a1") -> list[str]:
    return [f"id{i:03d}|{p}|{s}|{config}" for i in range(n // 3 + 1) for p in ("portrait", "beach", "suit")
            for s in range(seeds)][: n * seeds]


def values(n: int = 84, sd: float = 0.08, seed: int = 1, **kw) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {k: float(0.6 + sd * rng.standard_normal()) for k in keys(n, **kw)}


def paper_doc() -> dict:
    return json.loads(PAPER.read_text())


def write_json(tmp_path: Path, doc, name: str = "b.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=1))
    return path


def small_baseline(**overrides) -> Baseline:
    metric = MetricBaseline(aggregate=0.6, n=6, tolerance=0.01, tolerance_kind="absolute",
                            direction="higher_is_better", unit="cosine", note="test",
                            samples={k: 0.6 for k in keys(6)})
    b = Baseline(
        name="tiny-test", description="for tests", created="2026-11-25T12:00:00Z",
        provenance={"profile": "tiny", "gpu": None, "packages": {"torch": "2.13.0"}, "weights": {"transformer": "abc"},
                    "seeds": [0], "command": "pytest"},
        claims={"table1_backbone_swap": ClaimBaseline(protocol="tiny", metrics={"id_sim[schnell-4]": metric})},
    )
    for k, v in overrides.items():
        setattr(b, k, v)
    return b


# ------------------------------------------------------------------------------------ paper.json


def test_paper_baseline_is_valid_and_aggregate_only():
    b = load_baseline(PAPER)
    assert b.provenance["profile"] == "paper"
    assert b.provenance["gpu"] == "NVIDIA RTX PRO 6000 Blackwell"
    assert set(b.claims) == {c.id for c in CLAIMS if c.in_paper}  # idrift's own claims have no paper figures
    for cid, claim in b.claims.items():
        for mid, m in claim.metrics.items():
            assert m.samples is None, f"{cid}/{mid}: the paper has no per-sample values"
            assert len(m.note) > 40, f"{cid}/{mid}: the tolerance needs a justification"
            assert m.hardware_bound == mid.startswith("latency_s["), f"{cid}/{mid}"
    assert "different subset" in b.claims["figure5_drift"].protocol


def test_paper_baseline_is_in_canonical_form(tmp_path):
    # What write_baseline produces, byte for byte: blessing it again changes nothing.
    out = write_baseline(load_baseline(PAPER), tmp_path / "paper.json")
    assert out.read_bytes() == PAPER.read_bytes()


def test_paper_baseline_matches_paper_claims():
    src = json.loads(PAPER_CLAIMS.read_text())
    b = load_baseline(PAPER)
    t1, t2 = src["table1"], src["table2_id_sim_by_prompt"]
    expected = {
        ("table1_backbone_swap", "id_sim[dev-28]"): t1["flux_dev_28"]["id_sim"],
        ("table1_backbone_swap", "id_sim[schnell-4]"): t1["flux_schnell_4"]["id_sim"],
        ("table1_backbone_swap", "id_sim_delta"): t1["delta_schnell_vs_dev28"]["id_sim"],
        ("table1_backbone_swap", "lpips[dev-28]"): t1["flux_dev_28"]["lpips"],
        ("table1_backbone_swap", "lpips[schnell-4]"): t1["flux_schnell_4"]["lpips"],
        ("table1_backbone_swap", "lpips_delta"): t1["delta_schnell_vs_dev28"]["lpips"],
        ("latency", "latency_s[dev-28]"): t1["flux_dev_28"]["latency_s"],
        ("latency", "latency_s[schnell-4]"): t1["flux_schnell_4"]["latency_s"],
        ("latency", "speedup"): t1["delta_schnell_vs_dev28"]["speedup"],
        ("table1_dev4_diagnostic", "id_sim[dev-4]"): t1["flux_dev_4_diagnostic"]["id_sim"],
        ("latency", "latency_s[dev-4]"): t1["flux_dev_4_diagnostic"]["latency_s"],
        ("figure5_drift", "peak_step"): src["figure5_drift"]["peak_step"],
        ("figure5_drift", "id_sim_at_peak"): src["figure5_drift"]["id_sim_at_peak"],
        ("figure5_drift", "id_sim_at_28"): src["figure5_drift"]["id_sim_at_28"],
        ("figure5_drift", "drop"): src["figure5_drift"]["drop"],
        ("figure5_guidance", "id_sim_mean"): src["figure5_guidance"]["id_sim"],
        ("figure5_guidance", "id_sim_range"): src["figure5_guidance"]["variance"],
        ("figure4_alpha", "min_drift"): src["figure4_alpha"]["drift_min"],
        ("figure4_alpha", "max_drift"): src["figure4_alpha"]["drift_max"],
        ("figures6_7_prompt_complexity", "drift[minimal]"): src["figures6_7_prompt_complexity"]["dev_drift_minimal"],
        ("figures6_7_prompt_complexity", "drift[style]"): src["figures6_7_prompt_complexity"]["dev_drift_style"],
        ("figures6_7_prompt_complexity", "schnell_drift_max"): src["figures6_7_prompt_complexity"]["schnell_drift_max"],
    }
    for prompt in ("portrait", "beach", "suit"):
        expected["table2_id_sim_by_prompt", f"id_sim[dev-28|{prompt}]"] = t2[prompt]["flux_dev_28"]
        expected["table2_id_sim_by_prompt", f"id_sim[schnell-4|{prompt}]"] = t2[prompt]["flux_schnell_4"]
        expected["table2_id_sim_by_prompt", f"delta[{prompt}]"] = t2[prompt]["delta"]
    for (cid, mid), value in expected.items():
        assert b.metric(cid, mid).aggregate == pytest.approx(value), (cid, mid)


def test_paper_speedup_and_latency_through_compare_metric():
    b = load_baseline(PAPER)
    speedup = b.metric("latency", "speedup")
    assert compare_metric("latency", "speedup", speedup, candidate_aggregate=6.3).status == "pass"
    assert compare_metric("latency", "speedup", speedup, candidate_aggregate=4.8).status == "fail"
    lat = b.metric("latency", "latency_s[schnell-4]")
    v = compare_metric("latency", "latency_s[schnell-4]", lat, candidate_aggregate=1.0,
                       baseline_gpu=b.provenance["gpu"], candidate_gpu="NVIDIA H100 80GB HBM3")
    assert v.status == "not comparable"
    v = compare_metric("latency", "latency_s[schnell-4]", lat, candidate_aggregate=2.1,
                       baseline_gpu=b.provenance["gpu"], candidate_gpu="nvidia rtx pro 6000  blackwell")
    assert v.status == "fail"  # 2.1 s > 1.73 s + 10%
    # figure 3: "virtually all" read as >= 0.9
    frac = b.metric("figure3_per_identity", "fraction_schnell_ge_dev")
    assert compare_metric("figure3_per_identity", "fraction_schnell_ge_dev", frac,
                          candidate_aggregate=26 / 28).status == "pass"
    assert compare_metric("figure3_per_identity", "fraction_schnell_ge_dev", frac,
                          candidate_aggregate=25 / 28).status == "fail"


# ----------------------------------------------------------------------------------- malformed files


def _set(doc, path, value):
    *head, last = path
    for p in head:
        doc = doc[p]
    if value is _DELETE:
        del doc[last]
    else:
        doc[last] = value


_DELETE = object()
SPEEDUP = ("claims", "latency", "metrics", "speedup")

MALFORMED = {
    "missing_field": (SPEEDUP + ("unit",), _DELETE,
                      "claims.latency.metrics.speedup: 'unit' is a required property"),
    "negative_tolerance": (SPEEDUP + ("tolerance",), -1,
                           "claims.latency.metrics.speedup.tolerance: -1 is less than the minimum of 0"),
    "wrong_direction": (SPEEDUP + ("direction",), "up",
                        "claims.latency.metrics.speedup.direction: 'up' is not one of"),
    "misspelt_field": (SPEEDUP + ("tolerence",), 0.1, "'tolerence' was unexpected"),
    "unknown_claim": (("claims", "tabel1_backbone_swap"), {"protocol": "x", "metrics": {}},
                      "key 'tabel1_backbone_swap'"),
    "aggregate_not_number": (SPEEDUP + ("aggregate",), "5.9", "claims.latency.metrics.speedup.aggregate"),
    "bad_sample_key": (SPEEDUP + ("samples",), {"no-pipes": 1.0}, "claims.latency.metrics.speedup.samples"),
    "n_not_sample_count": (SPEEDUP + ("samples",), {"a|portrait|0|dev-28": 1.0},
                           "claims.latency.metrics.speedup.n: 84 but there are 1 samples"),
    "bad_gpu_type": (("provenance", "gpu"), 3, "provenance.gpu"),
    "bad_created": (("created",), "yesterday", "created: 'yesterday' does not match"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_baseline_names_file_and_json_path(tmp_path, case):
    path_in_doc, value, expected = MALFORMED[case]
    doc = paper_doc()
    _set(doc, path_in_doc, value)
    path = write_json(tmp_path, doc, f"{case}.json")
    with pytest.raises(BaselineError) as err:
        load_baseline(path)
    msg = str(err.value)
    assert str(path) in msg
    assert expected in msg
    assert "idrift bless" in msg  # what to do


def test_invalid_json_gives_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n "schema_version": 1,\n "name": "x",\n}\n')
    with pytest.raises(BaselineError, match=r"broken\.json: invalid JSON at line 4, column 1"):
        load_baseline(path)


def test_nan_is_rejected(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text(PAPER.read_text().replace('"aggregate": 5.9', '"aggregate": NaN'))
    with pytest.raises(BaselineError, match=r"nan\.json: NaN is not valid JSON"):
        load_baseline(path)


def test_old_schema_says_rebless(tmp_path):
    doc = paper_doc()
    doc["schema_version"] = SCHEMA_VERSION - 1
    doc["claims"] = {"whatever": "old layout"}  # an old file need not match the new schema
    path = write_json(tmp_path, doc, "old.json")
    with pytest.raises(BaselineError) as err:
        load_baseline(path)
    msg = str(err.value)
    assert "old.json" in msg and "schema_version" in msg
    assert f"written by an older idrift (schema {SCHEMA_VERSION - 1}" in msg
    assert "re-bless it with `idrift bless` or --idrift-update-baselines" in msg


def test_newer_schema_says_upgrade(tmp_path):
    doc = paper_doc()
    doc["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(BaselineError, match="newer idrift.*upgrade idrift"):
        load_baseline(write_json(tmp_path, doc))


def test_not_an_object_and_missing_file(tmp_path):
    with pytest.raises(BaselineError, match=r"list\.json: \(top level\): expected a JSON object"):
        load_baseline(write_json(tmp_path, [1, 2], "list.json"))
    with pytest.raises(BaselineError, match="nope.json does not exist"):
        load_baseline(tmp_path / "nope.json")


# ------------------------------------------------------------------------------------------ resolve


def test_resolve_by_name_and_path(tmp_path):
    assert resolve_baseline("paper", BASELINES) == BASELINES / "paper.json"
    assert resolve_baseline(str(PAPER), tmp_path) == PAPER
    (tmp_path / "tiny-cpu.json").write_text("{}")
    (tmp_path / "h100-synthetic.json").write_text("{}")
    assert resolve_baseline("tiny-cpu", tmp_path) == tmp_path / "tiny-cpu.json"
    with pytest.raises(BaselineError) as err:
        resolve_baseline("tiny-gpu", tmp_path)
    msg = str(err.value)
    assert "tiny-gpu" in msg and "available: h100-synthetic, tiny-cpu" in msg and "idrift bless" in msg
    with pytest.raises(BaselineError, match="missing.json does not exist"):
        resolve_baseline(str(tmp_path / "missing.json"), tmp_path)


# ------------------------------------------------------------------------------------ write and diff


def test_round_trip_with_samples(tmp_path):
    b = small_baseline()
    path = write_baseline(b, tmp_path / "sub" / "tiny.json")
    text = path.read_text()
    assert text.endswith("}\n") and '\n "claims": {' in text  # indent 1, sorted keys
    assert list(json.loads(text)) == sorted(json.loads(text))
    back = load_baseline(path)
    assert back == b
    assert back.metric("table1_backbone_swap", "id_sim[schnell-4]").samples == b.claims[
        "table1_backbone_swap"].metrics["id_sim[schnell-4]"].samples
    assert [p.name for p in path.parent.iterdir()] == ["tiny.json"]  # no temp file left behind


def test_write_refuses_invalid_and_keeps_the_old_file(tmp_path):
    path = write_baseline(small_baseline(), tmp_path / "tiny.json")
    before = path.read_bytes()
    bad = small_baseline()
    bad.claims["table1_backbone_swap"].metrics["id_sim[schnell-4]"].tolerance = -0.5
    with pytest.raises(BaselineError, match="refusing to write.*tolerance: -0.5 is less than the minimum of 0"):
        write_baseline(bad, path)
    nan = small_baseline()
    nan.claims["table1_backbone_swap"].metrics["id_sim[schnell-4]"].aggregate = float("nan")
    with pytest.raises(BaselineError, match="NaN or inf"):
        write_baseline(nan, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.json"]


def test_diff_lines():
    old = small_baseline()
    assert diff_baselines(old, copy.deepcopy(old)) == []
    new = copy.deepcopy(old)
    m = new.claims["table1_backbone_swap"].metrics["id_sim[schnell-4]"]
    m.aggregate = 0.62
    m.tolerance = 0.02
    m.samples = {k: (0.7 if i == 0 else v) for i, (k, v) in enumerate(m.samples.items())}
    new.claims["table1_backbone_swap"].metrics["speedup"] = MetricBaseline(
        aggregate=5.9, n=1, tolerance=0.15, tolerance_kind="relative", direction="higher_is_better", unit="x", note="")
    new.claims["figure4_alpha"] = ClaimBaseline(protocol="p", metrics={"drift_min": MetricBaseline(
        aggregate=0.021, n=None, tolerance=0.016, tolerance_kind="absolute", direction="higher_is_better",
        unit="cosine", note="")})
    new.provenance = {**new.provenance, "weights": {"transformer": "def"}, "packages": {"torch": "2.14.1"}}
    lines = diff_baselines(old, new)
    assert "~ table1_backbone_swap / id_sim[schnell-4]: aggregate 0.6 -> 0.62 (+0.02)" in lines
    assert "~ table1_backbone_swap / id_sim[schnell-4]: tolerance 0.01 absolute -> 0.02 absolute" in lines
    assert "~ table1_backbone_swap / id_sim[schnell-4]: samples 6 -> 6 (1 changed, 0 added, 0 removed)" in lines
    assert "+ table1_backbone_swap / speedup: 5.9 (tolerance 15% relative, higher_is_better)" in lines
    assert "+ claim figure4_alpha (1 metrics)" in lines
    assert "~ provenance.weights.transformer: abc -> def" in lines
    assert "~ provenance.packages.torch: 2.13.0 -> 2.14.1" in lines
    back = diff_baselines(new, old)
    assert "- claim figure4_alpha (1 metrics)" in back
    assert "- table1_backbone_swap / speedup: 5.9" in back


# ----------------------------------------------------------------------------------------- the gate


def test_identical_passes():
    base = values()
    v = paired_gate(dict(base), base, tolerance=0.01, direction="higher_is_better", **FAST)
    assert v.status == "pass" and v.n == 84
    assert v.difference == 0 and v.interval == (0.0, 0.0)  # degenerate: the interval is the point


def test_planted_drop_fails_with_a_readable_message():
    base = values()
    rng = np.random.default_rng(7)
    cand = {k: x - 0.04 + 0.01 * rng.standard_normal() for k, x in base.items()}
    v = paired_gate(cand, base, tolerance=0.01, direction="higher_is_better",
                    claim="table1_backbone_swap", metric="id_sim[schnell-4]", **FAST)
    assert v.status == "fail" and v.failed
    lo, hi = v.interval
    assert lo < v.difference < hi < -0.01
    assert v.difference == pytest.approx(v.candidate - v.baseline)
    msg = v.message()
    for needle in ("FAIL: table1_backbone_swap / id_sim[schnell-4]", "baseline", f"{v.baseline:.6g}", "candidate",
                   f"{v.candidate:.6g}", "difference", f"{v.difference:.6g}", "interval", f"[{lo:.6g}, {hi:.6g}]",
                   "tolerance   0.01 absolute", "entirely below -0.01", "n=84"):
        assert needle in msg, needle
    row = v.as_row()
    assert row["status"] == "fail" and row["ci_high"] == hi and row["claim"] == "table1_backbone_swap"


def test_drop_within_tolerance_passes_and_lower_is_better_fails_upwards():
    base = values()
    rng = np.random.default_rng(3)
    small = {k: x - 0.004 + 0.01 * rng.standard_normal() for k, x in base.items()}
    assert paired_gate(small, base, tolerance=0.01, direction="higher_is_better", **FAST).status == "pass"
    worse = {k: x + 0.05 for k, x in base.items()}
    v = paired_gate(worse, base, tolerance=0.02, direction="lower_is_better", **FAST)
    assert v.status == "fail" and "entirely above +0.02" in v.message()
    # improving a lower_is_better metric never fails
    assert paired_gate({k: x - 0.05 for k, x in base.items()}, base, tolerance=0.0,
                       direction="lower_is_better", **FAST).status == "pass"


def test_relative_tolerance_uses_the_baseline_level():
    base = {k: 10.0 + 0.01 * i for i, k in enumerate(keys(12))}
    cand = {k: x * 1.15 for k, x in base.items()}
    v = paired_gate(cand, base, tolerance=0.10, tolerance_kind="relative", direction="lower_is_better", **FAST)
    assert v.status == "fail" and v.margin == pytest.approx(0.1 * v.baseline)
    assert "10% relative" in v.message()


def test_equal_golden_exact():
    golden = {k: float(i) for i, k in enumerate(keys(6))}
    assert paired_gate(dict(golden), golden, tolerance=0, direction="equal").status == "pass"
    changed = dict(golden)
    key = keys(6)[4]
    changed[key] += 1e-9
    v = paired_gate(changed, golden, tolerance=0, direction="equal", claim="golden", metric="pixel_digest[dev-28]")
    assert v.status == "fail"
    assert key in v.message() and "fails on any difference" in v.message()
    # one golden sample is enough for an exact check
    one = {keys(1)[0]: 3.0}
    assert paired_gate({keys(1)[0]: 3.5}, one, tolerance=0, direction="equal").status == "fail"


def test_equal_with_tolerance_is_two_sided():
    base = values(30, sd=0.02)
    for shift, status in ((0.05, "fail"), (-0.05, "fail"), (0.001, "pass")):
        cand = {k: x + shift for k, x in base.items()}
        assert paired_gate(cand, base, tolerance=0.01, direction="equal", **FAST).status == status, shift


def test_interval_moves_up_with_the_candidate_when_most_differences_are_zero():
    # Unchanged samples give d = 0 exactly: the tie-heavy case where BCa's interval jumps with float
    # rounding (the reason the gate uses percentile). The interval must follow a shift up.
    ks = keys(30)
    base = dict.fromkeys(ks, 0.6)
    cand = {**base, ks[-1]: 0.63}
    before = paired_gate(cand, base, tolerance=0.0, direction="higher_is_better", **FAST)
    after = paired_gate({k: v + 0.001 for k, v in cand.items()}, base, tolerance=0.0, direction="higher_is_better",
                        **FAST)
    assert after.interval[0] >= before.interval[0] + 0.0009
    assert after.interval[1] >= before.interval[1] + 0.0009


def test_missing_keys_reported_and_too_few_pairs_insufficient():
    base = values(10)
    cand = {k: x for k, x in list(base.items())[:7]}
    cand["new|portrait|0|schnell-4-g0-a1"] = 0.5
    v = paired_gate(cand, base, tolerance=0.01, direction="higher_is_better", **FAST)
    assert v.status == "pass" and v.n == 7
    assert len(v.missing_in_candidate) == 3 and v.missing_in_baseline == ["new|portrait|0|schnell-4-g0-a1"]
    assert any("3 baseline sample(s) missing" in n for n in v.notes)
    v = paired_gate({keys(1)[0]: 0.1}, base, tolerance=0.01, direction="higher_is_better")
    assert v.status == "insufficient" and "needs at least 2" in v.message()


def test_nonfinite_pairs_dropped_with_a_note():
    base = values(20)
    cand = dict(base)
    first = keys(20)[0]
    cand[first] = float("nan")
    v = paired_gate(cand, base, tolerance=0.01, direction="higher_is_better", **FAST)
    assert v.n == 19 and any("dropped for NaN/inf" in n and first in n for n in v.notes)


def test_seeds_are_averaged_per_identity_and_prompt():
    base = values(12, seeds=4)
    cand = {k: x - 0.001 for k, x in base.items()}
    v = paired_gate(cand, base, tolerance=0.01, direction="higher_is_better", **FAST)
    assert v.n == 12  # 12 pairs, not 48 independent samples
    assert any("4 seeds averaged" in n for n in v.notes)
    v = paired_gate(cand, base, tolerance=0.01, direction="higher_is_better", average_seeds=False, **FAST)
    assert v.n == 48


def test_band_gate():
    assert band_gate(0.60, 0.615, tolerance=0.02, direction="higher_is_better").status == "pass"
    v = band_gate(0.58, 0.615, tolerance=0.02, direction="higher_is_better", claim="c", metric="m")
    assert v.status == "fail" and v.interval == pytest.approx((-0.035, -0.035))
    # with the run's standard error, the same point is not clearly outside the band
    assert band_gate(0.58, 0.615, tolerance=0.02, direction="higher_is_better", candidate_sem=0.01).status == "pass"
    assert band_gate(0.64, 0.615, tolerance=0.02, direction="equal").status == "fail"
    assert band_gate(0.0, 0.0, tolerance=0.0, direction="equal").status == "pass"
    assert band_gate(float("nan"), 0.6, tolerance=0.02, direction="higher_is_better").status == "fail"


def test_ratio_gate_speedup():
    v = ratio_gate(10.29, 1.73, 5.9, tolerance=0.15, claim="table1_backbone_swap", metric="speedup")
    assert v.status == "pass" and v.candidate == pytest.approx(10.29 / 1.73)
    assert ratio_gate(6.3, 1.5, 5.9, tolerance=0.15).status == "fail"  # 4.2x < 5.9 x 0.85
    # the same ratio on a GPU twice as fast: portable, same verdict
    assert ratio_gate(10.29 / 2, 1.73 / 2, 5.9, tolerance=0.15).status == "pass"
    # repeated timings: a bootstrap interval of the ratio of means
    rng = np.random.default_rng(0)
    dev = 6.3 + 0.05 * rng.standard_normal(8)
    schnell = 1.0 + 0.01 * rng.standard_normal(8)
    v = ratio_gate(dev, schnell, 5.9, tolerance=0.15, **FAST)
    assert v.status == "pass" and v.interval[0] < v.difference < v.interval[1] and v.n == 8
    assert ratio_gate(dev, schnell * 1.5, 5.9, tolerance=0.15, **FAST).status == "fail"
    with pytest.raises(ValueError, match="positive finite"):
        ratio_gate(1.0, 0.0, 5.9, tolerance=0.15)


def test_absolute_latency_only_on_the_same_gpu():
    v = absolute_latency_gate(1.0, 1.73, candidate_gpu="NVIDIA H100 80GB HBM3",
                              baseline_gpu="NVIDIA RTX PRO 6000 Blackwell", tolerance=0.1,
                              claim="table1_backbone_swap", metric="latency_s[schnell-4]")
    assert v.status == "not comparable" and v.difference is None
    assert "H100" in v.message() and "RTX PRO 6000" in v.message() and "speedup" in v.message()
    assert absolute_latency_gate(1.0, 1.0, candidate_gpu=None, baseline_gpu=None,
                                 tolerance=0.1).status == "not comparable"
    same = {"candidate_gpu": "NVIDIA H100 80GB HBM3", "baseline_gpu": "nvidia h100 80gb hbm3", "tolerance": 0.1}
    assert absolute_latency_gate(1.05, 1.0, **same).status == "pass"
    assert absolute_latency_gate(1.25, 1.0, **same).status == "fail"
    assert absolute_latency_gate([1.20, 1.22, 1.21, 1.23], 1.0, **same, **FAST).status == "fail"
    assert absolute_latency_gate([0.98, 1.02, 1.01, 0.99], 1.0, **same, **FAST).status == "pass"


def test_provenance_mismatches():
    base = {"profile": "real", "gpu": "NVIDIA H100 80GB HBM3",
            "packages": {"torch": "2.4.1+cu121", "diffusers": "0.42.0", "lpips": "0.1.4", "numpy": "1.26"},
            "weights": {"transformer": "aaa", "infusenet": "bbb"}}
    run = {"profile": "real", "gpu": "NVIDIA H100 80GB HBM3",
           "packages": {"torch": "2.4.0", "diffusers": "0.43.1", "numpy": "2.0"},
           "weights": {"transformer": "aaa", "infusenet": "ccc"}}
    flags = provenance_mismatches(base, run)
    assert flags == ["weights.infusenet: baseline bbb, this run ccc",
                     "packages.diffusers: baseline 0.42.0, this run 0.43.1"]
    run2 = {**run, "profile": "synthetic", "gpu": "NVIDIA H200", "weights": {"transformer": "aaa"}}
    flags = provenance_mismatches(base, run2)
    assert "profile: baseline 'real', this run 'synthetic'" in flags
    assert "gpu: baseline NVIDIA H100 80GB HBM3, this run NVIDIA H200" in flags
    assert "weights.infusenet: baseline bbb, this run (not recorded)" in flags
    # the paper records no versions or fingerprints: unknown is not a mismatch
    paper = load_baseline(PAPER).provenance
    assert provenance_mismatches(paper, {**run, "profile": "real", "gpu": "NVIDIA RTX PRO 6000 Blackwell"}) == [
        "profile: baseline 'paper', this run 'real'"]


def test_verdict_message_for_not_comparable_has_no_numbers_invented():
    v = Verdict(claim="c", metric="m", status="insufficient", baseline=None, candidate=None, difference=None,
                interval=None, tolerance=0.01, direction="higher_is_better", n=0, notes=["why"])
    msg = v.message()
    assert "INCONCLUSIVE: c / m" in msg  # too few pairs: the interval cannot decide
    assert "note: why" in msg and "interval    -" in msg


def test_bad_rule_arguments_are_errors():
    with pytest.raises(ValueError, match="direction must be one of"):
        paired_gate({}, {}, tolerance=0.0, direction="up")
    with pytest.raises(ValueError, match="tolerance must be"):
        band_gate(1.0, 1.0, tolerance=-1.0, direction="equal")


# ----------------------------------------------------------------------------------------- properties

pair_values = st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=3, max_size=30)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=pair_values, noise=st.lists(st.floats(-0.1, 0.1), min_size=30, max_size=30),
       order_seed=st.integers(0, 10**6), tolerance=st.sampled_from([0.0, 0.005, 0.02]),
       direction=st.sampled_from(["higher_is_better", "lower_is_better", "equal"]))
def test_gate_is_invariant_to_key_order(base, noise, order_seed, tolerance, direction):
    ks = keys(len(base))
    b = dict(zip(ks, base))
    c = {k: x + e for (k, x), e in zip(b.items(), noise)}
    shuffled = list(c.items())
    random.Random(order_seed).shuffle(shuffled)
    v1 = paired_gate(c, b, tolerance=tolerance, direction=direction, **FAST)
    v2 = paired_gate(dict(shuffled), dict(reversed(list(b.items()))), tolerance=tolerance, direction=direction, **FAST)
    assert (v1.status, v1.interval, v1.difference) == (v2.status, v2.interval, v2.difference)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=pair_values, noise=st.lists(st.floats(-0.1, 0.1), min_size=30, max_size=30),
       shift=st.floats(0.001, 0.5), tolerance=st.sampled_from([0.0, 0.005, 0.02]))
def test_shifting_candidate_up_never_turns_pass_into_fail(base, noise, shift, tolerance):
    ks = keys(len(base))
    b = dict(zip(ks, base))
    c = {k: x + e for (k, x), e in zip(b.items(), noise)}
    up = {k: x + shift for k, x in c.items()}
    before = paired_gate(c, b, tolerance=tolerance, direction="higher_is_better", **FAST)
    after = paired_gate(up, b, tolerance=tolerance, direction="higher_is_better", **FAST)
    if before.status == "pass":
        assert after.status == "pass"
    assert after.interval[1] >= before.interval[1]
