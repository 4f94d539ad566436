"""CLIP-T (idrift.metrics.clip_t), its loader and weights (idrift.models.clip), its measurement by the runner,
and the text-identity claim built on it (beyond the paper).

The CLIP here is a tiny random one saved in the real layout (config.json, model.safetensors, tokenizer
files, preprocessor_config.json) and read back by the same loader `real` uses. Its scores mean nothing
about text; what is tested is that the number is CLIP's image-text cosine, stored, versioned and judged.
The claim's per-sample values are fabricated (as in tests/test_claims.py) to follow or break the relation.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from idrift.claims import CLAIMS_BY_ID
from idrift.errors import WeightsError
from idrift.evaluate import check_expectations, evaluate
from idrift.metrics import REGISTRY, MetricSetup, build_metric, metric_class
from idrift.metrics.clip_t import ClipT
from idrift.models.clip import DEFAULT_CLIP, clip_layout_problems, load_clip, save_tiny_clip, tiny_clip_fingerprint
from idrift.models.fingerprint import fingerprint_folder
from idrift.models.paths import resolve_weight_paths
from idrift.models.weights_check import check_weights
from idrift.verdicts import FAIL, NOT_JUDGEABLE, PASS

CLAIM = CLAIMS_BY_ID["text_identity_competition"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def metric(tiny_clip):
    return ClipT(tiny_clip, source="tiny")


def _image(seed: int, size=(96, 64)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8))


# ---- the metric -------------------------------------------------------------------------------------


def test_the_score_is_clips_image_text_cosine(tiny_clip, metric):
    """Independent of ClipT's own code path: CLIPModel's forward gives logit_scale * cos(image, text)."""
    clip = load_clip(tiny_clip)
    image, text = _image(0), "A photo of the person on a beach at sunset"
    inputs = clip.tokenizer([text], return_tensors="pt")
    pixels = clip.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = clip.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], pixel_values=pixels)
        expected = float(out.logits_per_image[0, 0] / clip.model.logit_scale.exp())
    assert metric.score(image, text) == pytest.approx(expected, abs=1e-5)
    assert -1.0 <= metric.score(image, text) <= 1.0
    assert metric.score(image, text) == metric.score(image, text)  # deterministic (the text embedding is cached)


def test_prompts_and_images_move_the_score(metric):
    image = _image(1)
    scores = {metric.score(image, text) for text in ("a portrait", "a man in a red suit, oil painting style",
                                                      "close-up, smiling, soft studio lighting")}
    assert len(scores) == 3  # every prompt word is in the tiny vocabulary: no two prompts tokenise alike
    assert metric.score(_image(2), "a portrait") != metric.score(image, "a portrait")
    with pytest.raises(ValueError, match="prompt text"):
        metric.score(image, "  ")


def test_the_tiny_clip_is_saved_deterministically_in_the_real_layout(tiny_clip, tmp_path):
    names = {p.name for p in tiny_clip.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer_config.json"} <= names
    assert json.loads((tiny_clip / "config.json").read_text())["model_type"] == "clip"
    assert clip_layout_problems(tiny_clip, "x") == []
    again = save_tiny_clip(tmp_path / "again")
    assert fingerprint_folder(again) == fingerprint_folder(tiny_clip)
    other = save_tiny_clip(tmp_path / "other", seed=1)
    assert fingerprint_folder(other) != fingerprint_folder(tiny_clip)


def test_the_version_and_provenance_carry_the_model_fingerprint(tiny_clip, metric, tmp_path):
    assert metric.fingerprint == fingerprint_folder(tiny_clip) and metric.fingerprint in metric.version
    prov = metric.provenance()
    assert prov["fingerprint"] == metric.fingerprint and prov["variant"] == "cosine"
    assert prov["folder"] == str(tiny_clip)
    other = ClipT(save_tiny_clip(tmp_path / "seed1", seed=1))
    assert other.version != metric.version  # other weights: the store measures again


def test_the_registry_builds_clip_t_lazily_on_tiny(tmp_path):
    assert metric_class("clip_t") is ClipT and "clip_t" in REGISTRY
    with pytest.raises(KeyError, match="registered: clip_t"):
        metric_class("no_such_metric")
    built = build_metric("clip_t", MetricSetup("tiny", "cpu", tmp_path, resolve_weight_paths()))
    assert built.provenance()["folder"] is None and not (tmp_path / "models").exists()  # nothing built yet
    assert built.fingerprint == tiny_clip_fingerprint()
    built.score(_image(3), "a portrait")
    assert built.provenance()["folder"] is not None and any((tmp_path / "models").glob("tiny-clip-*/model.safetensors"))


# ---- its weights ------------------------------------------------------------------------------------


def test_layout_problems_name_the_folder_and_what_is_missing(tiny_clip, tmp_path):
    assert "does not exist" in clip_layout_problems(tmp_path / "nope", "nope")[0]
    broken = tmp_path / "broken"
    shutil.copytree(tiny_clip, broken)
    (broken / "preprocessor_config.json").unlink()
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps(dict(config, model_type="clip_text_model")))
    problems = " | ".join(clip_layout_problems(broken, "broken"))
    assert "preprocessor_config.json" in problems and "clip_text_model" in problems
    with pytest.raises(WeightsError, match="broken.*IDRIFT_CLIP"):
        load_clip(broken)


def test_weights_check_finds_clip_by_option_env_and_hf_cache(tiny_clip, tmp_path, monkeypatch):
    monkeypatch.delenv("IDRIFT_CLIP", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    [status] = check_weights(resolve_weight_paths({"clip": str(tiny_clip)}), ["clip"])
    assert status.found and status.fingerprint == fingerprint_folder(tiny_clip)
    # The default is a hub id, looked up offline: not cached -> one line with what to run and what to set.
    [missing] = check_weights(resolve_weight_paths(), ["clip"])
    assert not missing.found and f"hf download {DEFAULT_CLIP}" in missing.problems[0]
    assert "--idrift-clip" in missing.problems[0] and "IDRIFT_CLIP" in missing.problems[0]
    # Once in the Hugging Face cache (the layout `hf download` writes), the default finds it.
    repo = tmp_path / "hub" / ("models--" + DEFAULT_CLIP.replace("/", "--"))
    commit = "0" * 40
    shutil.copytree(tiny_clip, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    [cached] = check_weights(resolve_weight_paths(), ["clip"])
    assert cached.found and cached.fingerprint == status.fingerprint, cached.problems
    monkeypatch.setenv("IDRIFT_CLIP", str(tmp_path / "from-env"))
    [from_env] = check_weights(resolve_weight_paths(), ["clip"])
    assert not from_env.found and "(from IDRIFT_CLIP)" in from_env.problems[0]


# ---- measured by the runner -------------------------------------------------------------------------


def test_the_runner_stores_clip_t_and_remeasures_only_it_on_a_new_version(tmp_path):
    from idrift.session import BenchmarkSession, SessionOptions

    session = BenchmarkSession(SessionOptions(store=str(tmp_path / "store"), cache_dir=str(tmp_path / "cache")))
    specs = [s for s in session.specs(CLAIM) if s.prompt_id == "minimal"][:2]  # one trajectory run serves both
    metric = session.registered_metric("clip_t")
    assert session.provenance["metrics"]["clip_t"]["fingerprint"] == metric.fingerprint
    calls = []
    measure = metric.measure
    metric.measure = lambda sample: calls.append(sample.key) or measure(sample)
    session.runner.ensure(specs, CLAIM.metrics, progress=False)
    assert sorted(calls) == sorted(s.key for s in specs)
    for spec in specs:
        record = session.store.get(spec)
        assert record.metrics["clip_t"]["version"] == metric.version
        expected = metric.score(record.load_image(), spec.prompt)
        assert record.metrics["clip_t"]["values"]["clip_t"] == pytest.approx(expected)
    id_sim_before = {s.key: session.store.get(s).metrics["id_sim"]["created"] for s in specs}
    session.runner.ensure(specs, CLAIM.metrics, progress=False)
    assert len(calls) == 2  # current version: nothing measured again
    metric.version = "clip_t/another-version"
    session.runner.ensure(specs, CLAIM.metrics, progress=False)
    assert len(calls) == 4
    for spec in specs:
        stored = session.store.get(spec).metrics
        assert stored["clip_t"]["version"] == "clip_t/another-version"
        assert stored["id_sim"]["created"] == id_sim_before[spec.key]  # ID_sim was not measured again
    session.runner.ensure(specs, ("id_sim",), progress=False)
    assert len(calls) == 4  # a claim that does not list clip_t does not measure it


# ---- the claim (beyond the paper) -------------------------------------------------------------------


def _records(clip_rises: bool = True, gain_follows_drift: bool = True) -> list[dict]:
    from idrift.data.prompts import load_prompt_set

    tiers = {p.id: p.tier for p in load_prompt_set("complexity_v1").prompts}
    out = []
    for ident in range(6):
        for prompt, tier in tiers.items():
            drift = 0.02 + 0.015 * tier  # more complex prompts drift more (figures 6-7)
            for arm in CLAIM.arms:
                late = (arm.steps - 4) / 24  # 0 at the identity peak (4 steps), 1 at 28
                gain = 0.5 * drift if gain_follows_drift else 0.5 * (0.1 - drift)
                noise = 0.002 * np.sin(7 * ident + 3 * tier + arm.steps)
                spec = {"backbone": "dev", "steps": arm.steps, "alpha": 1.0, "mode": "trajectory", "trajectory_of": 28,
                        "guidance": 3.5, "identity": f"id{ident}", "prompt_id": prompt, "seed": 0}
                out.append({"spec": spec, "status": "ok", "metrics": {
                    "id_sim": {"id_sim": 0.6 + 0.01 * ident - drift * late},
                    "clip_t": {"clip_t": 0.25 + 0.01 * tier + (gain if clip_rises else -gain) * late + noise}}})
    return out


def test_the_claim_passes_when_text_alignment_rises_with_drift():
    result = evaluate(CLAIM, _records())
    assert result.figures["clip_t_step_spearman"] == pytest.approx(1.0)
    assert result.figures["drift_gain_pearson"] > 0.9 and result.figures["clip_t_gain"] > 0
    assert result.figures["clip_t[dev-28-traj]"] > result.figures["clip_t[dev-4-traj]"]
    assert result.intervals["drift_gain_pearson"].ci is not None  # identity bootstrap
    outcomes = {o.expect.metric: o for o in check_expectations(result, "real", {})}
    assert {m: o.status for m, o in outcomes.items()} == {"clip_t_step_spearman": PASS, "drift_gain_pearson": PASS}


def test_the_claim_fails_when_text_alignment_falls_or_ignores_drift():
    outcomes = check_expectations(evaluate(CLAIM, _records(clip_rises=False)), "real", {})
    falling = {o.expect.metric: o.status for o in outcomes}
    assert falling["clip_t_step_spearman"] == FAIL
    unrelated = evaluate(CLAIM, _records(gain_follows_drift=False))
    assert unrelated.figures["drift_gain_pearson"] < 0
    assert {o.expect.metric: o.status for o in check_expectations(unrelated, "real", {})}["drift_gain_pearson"] == FAIL


def test_the_claim_is_not_judgeable_on_random_weights():
    from idrift.verdicts import SKIP_REASONS

    assert "beyond the paper" in CLAIM.paper and "Beyond the paper" in CLAIM.title
    assert {a.name for a in CLAIM.arms} == {f"dev-{s}-traj" for s in (4, 8, 12, 16, 20, 24, 28)}
    for profile in ("tiny", "synthetic"):
        outcomes = check_expectations(evaluate(CLAIM, _records()), profile, SKIP_REASONS)
        assert {o.status for o in outcomes} == {NOT_JUDGEABLE}
        assert all("--idrift-profile real" in o.reason for o in outcomes)
