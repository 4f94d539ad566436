"""Same seed, same image as InfiniteYou's own code: idrift's noise and decoding against diffusers itself.

InfiniteYou's pipeline is diffusers' `FluxControlNetPipeline` with InfuseNet reading the identity tokens
(with `txt_ids` zeros) where a ControlNet reads the text, and guidance 1.0. Driven here with one generator
on the CPU, it draws the control image's VAE posterior sample and then the initial latents; idrift's
initial latents, control latents and final 8-bit image must equal its, bitwise, on the tiny weights in
float32 and in bf16 (where `torch.randn(dtype=bf16)` differs from a float32 draw cast down, so the dtype
of each draw is checked too). The two draws of one sample are independent (the correlation bug: they were
the same tensor), and a batch keeps one generator per sample.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxControlNetPipeline
from tiny_runs import tiny_spec

from idrift.models.tiny import build_tiny_bundle
from idrift.pipeline.infinite_you import INFUSENET_GUIDANCE, InfiniteYouPipeline, noise_provenance
from idrift.pipeline.latents import unpack_latents


def _bundle(dtype: torch.dtype):
    bundle = build_tiny_bundle()
    if dtype != torch.float32:
        bundle.dtype = dtype
        for name in ("infusenet", "image_proj", "vae", "text_encoder", "text_encoder_2"):
            getattr(bundle, name).to(dtype)
        bundle.backbone_prepare.append(lambda name, model: model.to(dtype))
    return bundle


@pytest.fixture(scope="module", params=[torch.float32, torch.bfloat16], ids=["float32", "bf16"])
def pipe(request):
    return InfiniteYouPipeline(_bundle(request.param))


def _official(pipe: InfiniteYouPipeline, reference, specs, generators):
    """diffusers' FluxControlNetPipeline on the same modules, with InfuseNet fed the identity tokens where it
    would read text, as InfiniteYou's FluxInfuseNetPipeline does. Returns (initial latents, control latents,
    PIL images)."""
    first = specs[0]
    b = pipe.bundle
    id_tokens = pipe.identity_tokens(reference)
    seen = {}

    def infusenet_inputs(module, args, kwargs):
        batch = kwargs["hidden_states"].shape[0]
        seen.setdefault("control", kwargs["controlnet_cond"].clone())
        kwargs["encoder_hidden_states"] = id_tokens.expand(batch, -1, -1)
        kwargs["txt_ids"] = torch.zeros(id_tokens.shape[1], 3, dtype=id_tokens.dtype)
        kwargs["guidance"] = torch.full((batch,), INFUSENET_GUIDANCE)
        return args, kwargs

    official = FluxControlNetPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(b.scheduler_configs[first.backbone]), vae=b.vae,
        text_encoder=b.text_encoder, tokenizer=b.tokenizer, text_encoder_2=b.text_encoder_2, tokenizer_2=b.tokenizer_2,
        transformer=b.backbone(first.backbone), controlnet=b.infusenet)
    prepare_latents = official.prepare_latents

    def recorded_prepare_latents(*args, **kwargs):
        latents, ids = prepare_latents(*args, **kwargs)
        seen["latents"] = latents.clone()
        return latents, ids

    official.prepare_latents = recorded_prepare_latents
    text = pipe.encode_prompt(first.prompt)
    handle = b.infusenet.register_forward_pre_hook(infusenet_inputs, with_kwargs=True)
    try:
        images = official(
            prompt_embeds=text.prompt_embeds.expand(len(specs), -1, -1),
            pooled_prompt_embeds=text.pooled.expand(len(specs), -1),
            control_image=pipe.control_canvas(reference, first), height=first.height, width=first.width,
            num_inference_steps=first.steps, guidance_scale=first.guidance, controlnet_conditioning_scale=first.alpha,
            generator=generators if len(generators) > 1 else generators[0]).images
    finally:
        handle.remove()
    return seen["latents"], seen["control"], images


@pytest.mark.parametrize("control", ["keypoints", "black"])
def test_noise_and_image_equal_diffusers_flux_controlnet_pipeline(pipe, reference, control):
    spec = tiny_spec(control=control, seed=7)
    latents, control_latents, [image] = _official(pipe, reference, [spec], [torch.Generator("cpu").manual_seed(7)])
    ours_control, ours_latents, _, _ = pipe.noise(reference, spec)
    assert ours_latents.dtype == latents.dtype == pipe.dtype
    assert torch.equal(ours_latents, latents)
    assert torch.equal(ours_control, control_latents)
    assert torch.equal(pipe.initial_latents(spec)[0], latents)  # alone: past the control draw it skips
    assert torch.equal(pipe.control_latents(reference, spec), control_latents)
    ours = np.asarray(pipe(spec, reference).image)
    assert np.array_equal(ours, np.asarray(image))
    assert ours.std() > 5  # a real image, not a constant canvas on both sides


def test_batch_keeps_one_generator_per_sample_as_diffusers_does(pipe, reference):
    specs = [tiny_spec(seed=seed, control="keypoints") for seed in (3, 11)]
    generators = [torch.Generator("cpu").manual_seed(s.seed) for s in specs]
    latents, control_latents, images = _official(pipe, reference, specs, generators)
    ours = [pipe.noise(reference, s) for s in specs]
    assert torch.equal(torch.cat([x for _, x, _, _ in ours]), latents)
    atol = 1e-2 if pipe.dtype == torch.bfloat16 else 1e-5
    torch.testing.assert_close(torch.cat([c for c, _, _, _ in ours]), control_latents, rtol=0, atol=atol)
    batched = pipe.generate_batch(specs, reference)
    for result, image in zip(batched, images):
        # diffusers encodes the control image once per sample: its float32 posterior may move an ulp (the
        # atol above), and an ulp may round one pixel of the 8-bit image to the next level. More is a bug.
        diff = np.abs(np.asarray(result.image, dtype=np.int16) - np.asarray(image, dtype=np.int16))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), int((diff > 0).sum()))


def test_control_and_initial_noise_are_independent(pipe, reference):
    """The correlation bug: the control posterior's noise was the very tensor of the initial noise."""
    from idrift.pipeline.latents import pack_latents

    spec = tiny_spec(seed=5)  # black canvas: one posterior for every seed
    vae = pipe.bundle.vae
    control, latents, h, w = pipe.noise(reference, spec)
    mean, std = (t.float() for t in pipe._control_cache[(reference.key, "black", (spec.width, spec.height))])

    def control_noise(packed):  # the standard normal the posterior sample was drawn from
        posterior = unpack_latents(packed, h, w).float() / vae.config.scaling_factor + vae.config.shift_factor
        return ((posterior - mean) / std).flatten()

    initial_noise = unpack_latents(latents, h, w).float()

    def corr(packed):
        return float(torch.corrcoef(torch.stack([control_noise(packed), initial_noise.flatten()]))[0, 1])

    assert abs(corr(control)) < 0.2, corr(control)  # 256 independent normals: |r| < 0.2 at ~3 sigma
    # the check sees the bug: control latents made from the initial noise itself correlate fully
    correlated = pack_latents((mean + std * initial_noise - vae.config.shift_factor) * vae.config.scaling_factor)
    assert corr(correlated) > 0.99


def test_noise_provenance_names_the_generator_device():
    assert noise_provenance("cpu")["generator_device"] == "cpu"
    assert noise_provenance("cuda:1")["generator_device"] == "cuda"
    assert noise_provenance(torch.device("cpu")) == noise_provenance("cpu")
