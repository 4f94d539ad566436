"""The InfiniteYou pipeline on the tiny profile: real diffusers modules, random weights, CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline
from tiny_runs import KPS, pixels, tiny_spec

from idrift.errors import NonFiniteError
from idrift.models.tiny import build_tiny_bundle
from idrift.pipeline.control import draw_keypoints, fit_keypoints
from idrift.pipeline.infinite_you import InfiniteYouPipeline, infusenet_keep


@pytest.fixture(scope="module")
def pipe():
    return InfiniteYouPipeline(build_tiny_bundle())


spec = tiny_spec


@pytest.mark.parametrize("backbone,guidance", [("dev", 3.5), ("schnell", 0.0)])
def test_generates_an_image_for_both_backbones(pipe, reference, backbone, guidance):
    image = pixels(pipe(spec(backbone=backbone, guidance=guidance), reference))
    assert image.shape == (64, 64, 3)
    assert image.std() > 5  # not a constant canvas


def test_same_seed_is_bitwise_identical_and_seed_matters(pipe, reference):
    a, b = pixels(pipe(spec(), reference)), pixels(pipe(spec(), reference))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, pixels(pipe(spec(seed=1), reference)))


def test_schnell_ignores_guidance_and_dev_does_not(pipe, reference):
    schnell = [pixels(pipe(spec(backbone="schnell", guidance=g), reference)) for g in (0.0, 0.5, 1.0, 2.0, 3.5)]
    assert all(np.array_equal(schnell[0], other) for other in schnell[1:])
    assert not np.array_equal(pixels(pipe(spec(guidance=1.0), reference)), pixels(pipe(spec(guidance=3.5), reference)))


def test_alpha_zero_equals_stock_diffusers_flux_without_infusenet(pipe, reference):
    """alpha = 0 must be exactly the backbone alone: compare with diffusers' own FluxPipeline fed the
    same latents and text embeddings."""
    s = spec(alpha=0.0)
    ours = pixels(pipe(s, reference))
    b = pipe.bundle
    stock = FluxPipeline(scheduler=pipe.scheduler_for(s, 16, s.steps), vae=b.vae, text_encoder=b.text_encoder,
                         tokenizer=b.tokenizer, text_encoder_2=b.text_encoder_2, tokenizer_2=b.tokenizer_2,
                         transformer=b.backbone("dev"))
    latents, _, _ = pipe.initial_latents(s)
    text = pipe.encode_prompt(s.prompt)
    image = stock(prompt_embeds=text.prompt_embeds, pooled_prompt_embeds=text.pooled, latents=latents,
                  num_inference_steps=s.steps, guidance_scale=s.guidance, height=64, width=64).images[0]
    assert np.array_equal(ours, np.asarray(image, dtype=np.int16))  # decoded and rounded as diffusers does
    assert not np.array_equal(ours, pixels(pipe(spec(alpha=1.0), reference)))  # and InfuseNet does act


def test_residuals_scale_linearly_with_alpha(pipe, reference):
    s = spec()
    latents, h, w = pipe.initial_latents(s)
    from idrift.pipeline.latents import latent_image_ids

    args = (latents, torch.tensor(1000.0), pipe.control_latents(reference, s), pipe.identity_tokens(reference),
            pipe.encode_prompt(s.prompt).pooled, latent_image_ids(h, w, pipe.device, pipe.dtype))
    one_blocks, one_single = pipe.infusenet_residuals(*args, scale=1.0)
    for alpha in (0.25, 1.5):
        blocks, single = pipe.infusenet_residuals(*args, scale=alpha)
        for x, y in zip(blocks + single, one_blocks + one_single):
            torch.testing.assert_close(x, alpha * y)
    assert any(t.abs().max() > 0 for t in one_blocks + one_single)  # the tiny InfuseNet is not inert


@pytest.mark.parametrize("start,end,active",
                         [(0.0, 1.0, [1, 1, 1, 1]), (0.0, 0.5, [1, 1, 0, 0]), (0.5, 1.0, [0, 0, 1, 1])])
def test_infusenet_window_is_respected(pipe, reference, start, end, active):
    assert [infusenet_keep(i, 4, start, end) for i in range(4)] == active
    calls = []
    handle = pipe.bundle.infusenet.register_forward_hook(lambda *a: calls.append(1))
    try:
        pipe(spec(infuse_start=start, infuse_end=end), reference)
    finally:
        handle.remove()
    assert len(calls) == sum(active)


def test_trajectory_x0_matches_separate_runs_at_the_end(pipe, reference):
    full = pipe(spec(steps=28), reference, trajectory_steps=(1, 4, 28))
    assert sorted(full.trajectory) == [1, 4, 28]
    assert np.array_equal(np.asarray(full.trajectory[28]), np.asarray(full.image))
    step4 = pipe(spec(steps=4, mode="trajectory", trajectory_of=28), reference)
    assert np.array_equal(np.asarray(step4.image), np.asarray(full.trajectory[4]))
    separate4 = pipe(spec(steps=4), reference)  # a 4-step schedule is not the 28-step one cut short
    assert not np.array_equal(np.asarray(separate4.image), np.asarray(full.trajectory[4]))


def test_keypoint_control_changes_the_output(pipe, reference):
    assert not np.array_equal(pixels(pipe(spec(control="keypoints"), reference)), pixels(pipe(spec(), reference)))


def test_keypoint_drawing_lands_on_the_canvas():
    kps = fit_keypoints(KPS, (128, 128), (64, 96))
    canvas = np.asarray(draw_keypoints(kps, (64, 96)))
    assert canvas.shape == (96, 64, 3)
    for (x, y) in kps.astype(int):
        assert canvas[y, x].max() > 0  # a filled circle at every keypoint
    assert canvas[0, 0].max() == 0  # black elsewhere


def test_nan_from_the_backbone_is_a_clear_error(pipe, reference):
    backbone = pipe.bundle.backbone("dev")
    handle = backbone.register_forward_hook(lambda module, args, out: (out[0] * float("nan"),))
    try:
        with pytest.raises(NonFiniteError, match="NaN/inf at step 1/4"):
            pipe(spec(), reference)
    finally:
        handle.remove()


def test_global_rng_is_not_used(pipe, reference):
    torch.manual_seed(123)
    a = pixels(pipe(spec(), reference))
    torch.manual_seed(456)
    assert np.array_equal(a, pixels(pipe(spec(), reference)))


def test_real_layout_loads_and_generates_the_same_image(tmp_path, pipe, reference):
    from idrift.models.layout import save_tiny_as_real_layout
    from idrift.models.real import load_real_bundle

    paths = save_tiny_as_real_layout(tmp_path / "weights")
    loaded = InfiniteYouPipeline(load_real_bundle(paths, device="cpu", dtype=torch.float32))
    assert np.array_equal(pixels(loaded(spec(), reference)), pixels(pipe(spec(), reference)))


# ---- batches -------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes", [dict(), dict(backbone="schnell", guidance=0.0, control="keypoints")])
def test_a_batch_matches_the_samples_generated_alone(pipe, reference, changes):
    specs = [spec(seed=seed, **changes) for seed in (3, 1, 2)]
    batched = pipe.generate_batch(specs, reference)
    alone = [pipe(s, reference) for s in specs]
    assert len(batched) == 3
    for one, solo in zip(batched, alone):
        # Same noise and control draw per seed; only the matmul shapes differ (float reassociation).
        assert np.abs(pixels(one) - pixels(solo)).max() <= 1
    assert not np.array_equal(pixels(batched[0]), pixels(batched[1]))  # each sample keeps its own seed


def test_a_batched_trajectory_gives_every_sample_its_steps(pipe, reference):
    specs = [spec(seed=seed, steps=6) for seed in (0, 1)]
    batched = pipe.generate_batch(specs, reference, trajectory_steps=(2, 6))
    for one, s in zip(batched, specs):
        solo = pipe(s, reference, trajectory_steps=(2, 6))
        assert sorted(one.trajectory) == [2, 6]
        assert np.abs(pixels(one) - pixels(solo)).max() <= 1
        assert np.abs(np.asarray(one.trajectory[2], np.int16) - np.asarray(solo.trajectory[2], np.int16)).max() <= 1


def test_a_batch_refuses_specs_that_differ_in_more_than_the_seed(pipe, reference):
    with pytest.raises(ValueError, match="differ only in their seed.*prompt"):
        pipe.generate_batch([spec(seed=0), spec(seed=1, prompt="another prompt")], reference)
    with pytest.raises(ValueError, match="seeds repeat"):
        pipe.generate_batch([spec(seed=0), spec(seed=0)], reference)
    with pytest.raises(ValueError, match="at least one"):
        pipe.generate_batch([], reference)


def test_nan_in_a_batch_names_the_samples(pipe, reference):
    backbone = pipe.bundle.backbone("dev")

    def poison_second(module, args, output):  # only sample 1 of the batch goes bad
        output[0][1:2] = float("nan")
        return output

    handle = backbone.register_forward_hook(poison_second)
    specs = [spec(seed=0), spec(seed=1)]
    try:
        with pytest.raises(NonFiniteError, match=f"NaN/inf at step 1/4 for sample\\(s\\) {specs[1].key}$"):
            pipe.generate_batch(specs, reference)
    finally:
        handle.remove()
