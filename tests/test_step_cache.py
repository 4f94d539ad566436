"""idrift.accel.step_cache (First-Block-Cache) on the tiny CPU profile, real diffusers models.

The expected outputs of skipped steps come from diffusers' own FluxTransformer2DModel.forward, read at
the head block and at norm_out's input through forward hooks, not from the cache's code."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from diffusers.hooks import FirstBlockCacheConfig
from tiny_runs import pixels, tiny_spec

from idrift.accel.fast import AccelerationError, accelerate, provenance, require_lossless, restore
from idrift.accel.step_cache import FirstBlockCache, disable_step_cache, enable_step_cache
from idrift.config import RunSpec
from idrift.pipeline.latents import latent_image_ids

spec = tiny_spec


def backbone_inputs(pipe, reference, s: RunSpec, t: float, noise_seed: int, alpha: float) -> dict:
    """One step's backbone inputs as the pipeline builds them: latents from `noise_seed`, timestep t (0-1000),
    InfuseNet's residuals at scale `alpha` (None when alpha is 0)."""
    latents, latent_h, latent_w = pipe.initial_latents(spec(seed=noise_seed))
    img_ids = latent_image_ids(latent_h, latent_w, pipe.device, pipe.dtype)
    text = pipe.encode_prompt(s.prompt)
    timestep = torch.tensor(t)
    block_samples = single_samples = None
    if alpha:
        block_samples, single_samples = pipe.infusenet_residuals(
            latents, timestep, pipe.control_latents(reference, s), pipe.identity_tokens(reference), text.pooled,
            img_ids, alpha)
    return dict(hidden_states=latents, timestep=timestep.expand(1) / 1000, guidance=torch.full((1,), s.guidance),
                pooled_projections=text.pooled, encoder_hidden_states=text.prompt_embeds,
                controlnet_block_samples=block_samples, controlnet_single_block_samples=single_samples,
                txt_ids=text.text_ids, img_ids=img_ids)


@torch.no_grad()
def traced_forward(backbone, inputs: dict) -> dict:
    """diffusers' plain forward, with the first block's hidden-state output and norm_out's inputs read by hooks."""
    seen = {}
    head = backbone.transformer_blocks[0].register_forward_hook(
        lambda module, args, output: seen.update(block0=output[1]))
    norm = backbone.norm_out.register_forward_pre_hook(
        lambda module, args: seen.update(pre_norm=args[0], temb=args[1]))
    try:
        seen["velocity"] = backbone(**inputs, return_dict=False)[0]
    finally:
        head.remove()
        norm.remove()
    return seen


def first_sample(inputs: dict) -> torch.Tensor | int:
    """InfuseNet's sample added after the first backbone block (0 without InfuseNet)."""
    samples = inputs["controlnet_block_samples"]
    return 0 if samples is None else samples[0]


@torch.no_grad()
def head_and_tail(backbone, head_output: torch.Tensor, tail_residual: torch.Tensor, temb: torch.Tensor):
    return backbone.proj_out(backbone.norm_out(head_output + tail_residual, temb))


# ---- threshold 0 is the plain pipeline ---------------------------------------------------------------
@pytest.mark.parametrize("changes", [dict(), dict(backbone="schnell", guidance=0.0, alpha=0.0),
                                     dict(infuse_end=0.5)])
def test_threshold_zero_is_bitwise_the_pipeline_without_a_step_cache(pipe, reference, changes):
    s = spec(**changes)
    plain = pixels(pipe(s, reference))
    cache = enable_step_cache(pipe, 0.0)
    assert np.array_equal(pixels(pipe(s, reference)), plain)
    stats = cache.stats()["last_image"]
    assert stats["computed"] == 4 and stats["skipped"] == 0 and stats["skip_rate"] == 0.0
    assert [d["computed"] for d in stats["decisions"]] == [True] * 4
    assert [d["step"] for d in stats["decisions"]] == [0, 1, 2, 3]


def test_threshold_zero_computes_even_an_unchanged_step(pipe, reference):
    backbone = pipe.bundle.backbone("dev")
    inputs = backbone_inputs(pipe, reference, spec(), 500.0, noise_seed=3, alpha=1.0)
    cache = FirstBlockCache(threshold=0.0)
    first, second = cache(backbone, step=0, **inputs), cache(backbone, step=1, **inputs)
    decisions = cache.stats()["last_image"]["decisions"]
    assert decisions[1]["relative_diff"] == 0.0 and decisions[1]["computed"] is True  # skips need diff < threshold
    assert torch.equal(first, second)


# ---- what a skipped step computes --------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_skipped_step_is_the_head_output_plus_the_cached_tail_residual(pipe, reference, alpha):
    """Step 0 computes, step 1 (other latents, timestep and InfuseNet residuals) skips. Expected from diffusers'
    forward: head_1 = block0_1 + sample0_1; tail = pre_norm_0 - (block0_0 + sample0_0);
    velocity_1 = proj_out(norm_out(head_1 + tail, temb_1))."""
    s = spec(alpha=alpha)
    backbone = pipe.bundle.backbone("dev")
    step0 = backbone_inputs(pipe, reference, s, 1000.0, noise_seed=1, alpha=alpha)
    step1 = backbone_inputs(pipe, reference, s, 750.0, noise_seed=2, alpha=alpha)
    full0, full1 = traced_forward(backbone, step0), traced_forward(backbone, step1)
    cache = FirstBlockCache(threshold=1e6)

    assert torch.equal(cache(backbone, step=0, **step0), full0["velocity"])
    skipped = cache(backbone, step=1, **step1)
    assert [d["computed"] for d in cache.stats()["last_image"]["decisions"]] == [True, False]

    tail = full0["pre_norm"] - (full0["block0"] + first_sample(step0))
    expected = head_and_tail(backbone, full1["block0"] + first_sample(step1), tail, full1["temb"])
    torch.testing.assert_close(skipped, expected, rtol=1e-5, atol=1e-5)
    assert (skipped - full1["velocity"]).abs().max() > 1e-2  # a real skip: not the full forward


def test_identical_inputs_skip_to_the_full_forward_and_infusenet_counts_once(pipe, reference):
    """With the same inputs twice the tail residual is exactly unchanged, so a skipped step must give the
    full forward's velocity. diffusers' own FBC does not with InfuseNet: the forward adds the current
    controlnet samples after its skipped blocks on top of the cached residual that already holds them."""
    backbone = pipe.bundle.backbone("dev")
    for alpha in (1.0, 0.0):
        inputs = backbone_inputs(pipe, reference, spec(alpha=alpha), 500.0, noise_seed=3, alpha=alpha)
        full = traced_forward(backbone, inputs)
        cache = FirstBlockCache(threshold=0.5)
        cache(backbone, step=0, **inputs)
        ours = cache(backbone, step=1, **inputs)
        assert cache.stats()["last_image"]["skipped"] == 1
        torch.testing.assert_close(ours, full["velocity"], rtol=1e-5, atol=1e-5)

        diffusers_fbc = copy.deepcopy(backbone)
        diffusers_fbc.enable_cache(FirstBlockCacheConfig(threshold=0.5))
        with torch.no_grad(), diffusers_fbc.cache_context("cond"):
            diffusers_fbc(**inputs, return_dict=False)
            theirs = diffusers_fbc(**inputs, return_dict=False)[0]
        if alpha == 0.0:  # without controlnet samples diffusers' FBC is right too
            torch.testing.assert_close(theirs, full["velocity"], rtol=1e-5, atol=1e-5)
            continue
        # Theirs = every sample that its cached residual holds (all but the last single block's), twice.
        blocks, singles = backbone.transformer_blocks, backbone.single_transformer_blocks
        block_samples, single_samples = inputs["controlnet_block_samples"], inputs["controlnet_single_block_samples"]
        per_block = math.ceil(len(blocks) / len(block_samples))
        per_single = math.ceil(len(singles) / len(single_samples))
        twice = (sum(block_samples[i // per_block] for i in range(len(blocks)))
                 + sum(single_samples[i // per_single] for i in range(len(singles) - 1)))
        double_counted = head_and_tail(backbone, full["pre_norm"], twice, full["temb"])
        torch.testing.assert_close(theirs, double_counted, rtol=1e-5, atol=1e-5)
        assert (theirs - full["velocity"]).abs().max() > 1e-2


# ---- skipping in the pipeline ----------------------------------------------------------------------
@pytest.mark.parametrize("settings,changes,expected", [
    (dict(), dict(), [True, False, False, False, False, False]),
    (dict(warmup_steps=2), dict(), [True, True, False, False, False, False]),
    (dict(max_consecutive_skips=2), dict(), [True, False, False, True, False, False]),
    # InfuseNet's window ends after step 2: the cached tail holds InfuseNet, so step 3 recomputes.
    (dict(), dict(infuse_end=0.5), [True, False, False, True, False, False]),
])
def test_a_large_threshold_skips_after_the_warm_up(pipe, reference, settings, changes, expected):
    s = spec(steps=6, **changes)
    cache = enable_step_cache(pipe, 1e6, **settings)
    first = pixels(pipe(s, reference))
    stats = cache.stats()
    assert [d["computed"] for d in stats["last_image"]["decisions"]] == expected
    assert stats["last_image"]["skipped"] == expected.count(False)
    assert stats["last_image"]["computed"] == expected.count(True)
    assert stats["last_image"]["skip_rate"] == pytest.approx(expected.count(False) / 6)
    reasons = {d["reason"] for d in stats["last_image"]["decisions"]}
    assert "below threshold" in reasons and "nothing cached" in reasons

    # reset() at the start of each image: the second image repeats the first exactly, and totals add up.
    assert np.array_equal(pixels(pipe(s, reference)), first)
    total = cache.stats()["total"]
    assert total["images"] == 2 and total["skipped"] == 2 * expected.count(False)
    assert total["computed"] == 2 * expected.count(True)
    disable_step_cache(pipe)
    assert not np.array_equal(pixels(pipe(s, reference)), first)  # skipping changed the image: lossy


def test_relative_diff_is_recorded_and_decides_against_the_threshold(pipe, reference):
    cache = enable_step_cache(pipe, 0.0)
    pipe(spec(steps=6), reference)
    diffs = [d["relative_diff"] for d in cache.stats()["last_image"]["decisions"]]
    assert diffs[0] is None and all(d > 0 for d in diffs[1:])
    disable_step_cache(pipe)
    # A threshold between two recorded differences skips exactly the steps below it (the reference for the
    # difference is the last computed step, so pick the first difference as the cut and check step 1).
    cache = enable_step_cache(pipe, diffs[1] * 1.0001)
    pipe(spec(steps=6), reference)
    decisions = cache.stats()["last_image"]["decisions"]
    assert decisions[1]["computed"] is False and decisions[1]["relative_diff"] == pytest.approx(diffs[1])
    disable_step_cache(pipe)
    cache = enable_step_cache(pipe, diffs[1] * 0.9999)
    pipe(spec(steps=6), reference)
    assert cache.stats()["last_image"]["decisions"][1]["computed"] is True


def test_compiled_blocks_run_under_the_cache(pipe, reference):
    import torch._dynamo

    s = spec(backbone="schnell", guidance=0.0, steps=3)
    eager_cache = enable_step_cache(pipe, 1e6)
    eager = pixels(pipe(s, reference))
    disable_step_cache(pipe)
    torch._dynamo.reset()
    try:
        accelerate(pipe, "lossless", compile=True, backend="aot_eager", vae=False)
        compiled_cache = enable_step_cache(pipe, 1e6)
        compiled = pixels(pipe(s, reference))  # fullgraph=True: a graph break inside a block would raise
        backbone = pipe.bundle.backbone("schnell")
        assert all(block._compiled_call_impl is not None
                   for block in [*backbone.transformer_blocks, *backbone.single_transformer_blocks])
        assert np.abs(compiled - eager).max() <= 2
        compiled_decisions = compiled_cache.stats()["last_image"]["decisions"]
        eager_decisions = eager_cache.stats()["last_image"]["decisions"]
        assert [d["computed"] for d in compiled_decisions] == [d["computed"] for d in eager_decisions]
        assert [d["computed"] for d in compiled_decisions] == [True, False, False]
        assert pipe.acceleration["mode"] == "lossless" and "regional_compile" in pipe.acceleration["techniques"]
    finally:
        torch._dynamo.reset()


# ---- lossy marking -----------------------------------------------------------------------------------
def test_enabling_marks_the_pipeline_lossy_and_disabling_restores(pipe):
    assert getattr(pipe, "acceleration", None) is None
    cache = enable_step_cache(pipe, 0.12, max_consecutive_skips=3)
    assert pipe.hooks.step_cache is cache
    report = pipe.acceleration
    assert report["lossy"] is True and report["label"] == "lossy" and report["mode"] == "eager"
    assert report["techniques"] == ["first_block_cache(threshold=0.12)"]
    assert report["step_cache"] == {"method": "first_block_cache", "threshold": 0.12, "warmup_steps": 1,
                                    "max_consecutive_skips": 3}
    prov = provenance(pipe)
    assert prov["lossy"] is True and prov["label"] == "lossy"
    assert "first_block_cache(threshold=0.12)" in prov["techniques"]
    with pytest.raises(AccelerationError, match=r"lossless pipeline.*first_block_cache\(threshold=0.12\)"):
        require_lossless(pipe)
    with pytest.raises(AccelerationError, match="already has a step cache"):
        enable_step_cache(pipe, 0.2)
    assert disable_step_cache(pipe) is None
    assert pipe.hooks.step_cache is None and pipe.acceleration is None
    assert provenance(pipe)["label"] == "eager"
    require_lossless(pipe)  # no error
    assert disable_step_cache(pipe) is None  # a second disable changes nothing


def test_enabling_on_a_lossless_pipeline_keeps_its_report(pipe):
    lossless = accelerate(pipe, "lossless")
    enable_step_cache(pipe, 0.05)
    assert pipe.acceleration["mode"] == "lossless" and pipe.acceleration["lossy"] is True
    assert pipe.acceleration["techniques"] == ["step_modulation", "mlp_epilogues", "vae_channels_last",
                                               "first_block_cache(threshold=0.05)"]
    # not mutated
    assert lossless["techniques"] == ["step_modulation", "mlp_epilogues", "vae_channels_last"]
    assert lossless["lossy"] is False
    with pytest.raises(AccelerationError, match="lossless pipeline"):
        require_lossless(pipe)
    with pytest.raises(AccelerationError, match="step cache"):  # would drop the lossy label
        restore(pipe)
    with pytest.raises(AccelerationError, match="step cache"):
        accelerate(pipe, "lossy")
    assert provenance(pipe)["step_cache"]["threshold"] == 0.05
    assert disable_step_cache(pipe) is lossless and pipe.acceleration is lossless
    require_lossless(pipe)


# ---- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,argument", [
    (dict(threshold=-0.1), "threshold"), (dict(threshold=float("nan")), "threshold"),
    (dict(threshold=float("inf")), "threshold"), (dict(threshold="0.1"), "threshold"),
    (dict(threshold=True), "threshold"), (dict(threshold=0.1, warmup_steps=0), "warmup_steps"),
    (dict(threshold=0.1, warmup_steps=1.5), "warmup_steps"),
    (dict(threshold=0.1, max_consecutive_skips=0), "max_consecutive_skips"),
])
def test_bad_settings_raise_value_error_naming_the_argument(pipe, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        FirstBlockCache(**kwargs)
    with pytest.raises(ValueError, match=argument):
        enable_step_cache(pipe, **kwargs)
    assert pipe.hooks.step_cache is None and getattr(pipe, "acceleration", None) is None  # nothing half-applied


def test_a_backbone_that_is_not_flux_is_refused(pipe, reference):
    inputs = backbone_inputs(pipe, reference, spec(), 1000.0, noise_seed=0, alpha=0.0)
    with pytest.raises(TypeError, match="FluxTransformer2DModel"):
        FirstBlockCache(0.1)(torch.nn.Linear(4, 4), step=0, **inputs)
