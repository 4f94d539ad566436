"""idrift.accel.roofline: FLOPs counted on meta copies agree with the layer shapes; rates and floors."""

from __future__ import annotations

import pytest
import torch
from diffusers import FluxControlNetModel, FluxTransformer2DModel

from idrift.accel.roofline import bundle_step_flops, measure_rates, step_floor_s, step_flops
from idrift.models.synthetic import FLUX_CONFIG, INFUSENET_CONFIG
from idrift.models.tiny import build_tiny_bundle


def layer_shape_flops(config: dict, image_tokens: int, text_tokens: int) -> tuple[float, float]:
    """(Linear, attention) FLOPs of a FLUX stack's repeated blocks, from the layer shapes by hand: per token a
    double block has q, k, v, out (4 D^2) and an MLP of 4D (8 D^2) in each stream, a single block q, k, v (3 D^2),
    the MLP in (4 D^2) and the fused out projection (5 D^2); attention is QK^T and PV over all tokens."""
    d = config["num_attention_heads"] * config["attention_head_dim"]
    n = image_tokens + text_tokens
    layers = config["num_layers"] + config["num_single_layers"]
    return 2 * n * 12 * d * d * layers, 4 * n * n * d * layers


def test_a_real_size_step_counts_what_its_layer_shapes_say():
    # FLUX and InfuseNet at their real sizes, 864x1152: 3,888 image tokens, 512 text tokens, 8 identity tokens.
    with torch.device("meta"):
        flux = FluxTransformer2DModel(**FLUX_CONFIG, guidance_embeds=False)
        infusenet = FluxControlNetModel(**INFUSENET_CONFIG)
    flops = step_flops(flux, infusenet, image_tokens=3888, text_tokens=512, id_tokens=8)
    flux_mm, flux_attn = layer_shape_flops(FLUX_CONFIG, 3888, 512)
    infuse_mm, infuse_attn = layer_shape_flops(INFUSENET_CONFIG, 3888, 8)
    d = FLUX_CONFIG["num_attention_heads"] * FLUX_CONFIG["attention_head_dim"]
    zero_projections = 2 * 3888 * d * d * (INFUSENET_CONFIG["num_layers"] + INFUSENET_CONFIG["num_single_layers"])
    assert flops["attention"] == flux_attn + infuse_attn  # 16.2 TFLOP
    blocks = flux_mm + infuse_mm + zero_projections  # 70.2 TFLOP; embedders, AdaLN rows and proj_out come on top
    assert blocks <= flops["matmul"] <= 1.005 * blocks
    assert flops["other"] == 0.0
    assert flops["total"] == pytest.approx(86.4e12, rel=2e-3)


def test_dev_adds_only_its_guidance_embedding():
    bundle = build_tiny_bundle()
    schnell = bundle_step_flops(bundle, "schnell", width=64, height=64)
    dev = bundle_step_flops(bundle, "dev", width=64, height=64)
    assert schnell["image_tokens"] == (64 // 16) ** 2 and schnell["text_tokens"] == bundle.max_sequence_length
    assert dev["attention"] == schnell["attention"] and 0 < dev["matmul"] - schnell["matmul"] < 0.01 * schnell["matmul"]
    batch2 = bundle_step_flops(bundle, "dev", width=64, height=64, batch=2)
    assert batch2["total"] == pytest.approx(2 * dev["total"], rel=1e-3)


def test_rates_and_the_floor_they_give():
    rates = measure_rates("cpu", size=128, tokens=64, heads=2, head_dim=16, repeat=2)
    assert rates["bf16_matmul"] > 0 and rates["attention"] > 0
    assert rates["fp8_matmul"] is None  # fp8 products need a CUDA GPU of sm_89 or newer
    flops = {"matmul": 2e9, "attention": 1e9}
    assert step_floor_s(flops, rates) == pytest.approx(2e9 / rates["bf16_matmul"] + 1e9 / rates["attention"])
    with pytest.raises(ValueError, match="no fp8_matmul rate"):
        step_floor_s(flops, rates, matmul="fp8_matmul")
