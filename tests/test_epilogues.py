"""idrift.accel.epilogues on the tiny CPU profile: the ops compute their definitions, the installed MLPs
and single-block forwards compute what diffusers' code computes (float32), models with fp8 layers (either
order) give what they give without the epilogues, compiled blocks of one class still share one graph, and
uninstalling puts everything back. The GPU paths (cuBLASLt's GELU epilogue, the Triton quantisation kernel)
are checked against the same definitions on a CUDA machine; the speed is measured by benchmarks/test_speed.py
(docs/performance.md)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
import torch._dynamo
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_runs import compiled_graph_count, pixels, tiny_spec
from torch import nn

from idrift.accel.epilogues import (
    EpilogueGELU,
    MlpEpilogues,
    gelu_cat_quantize,
    linear_gelu_tanh,
    linear_of_concat,
)
from idrift.accel.fast import accelerate, restore
from idrift.accel.fp8 import quantize_fp8
from idrift.accel.memory import convert_to_8bit
from idrift.models.tiny import build_tiny_bundle


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 9), k_a=st.integers(1, 24), k_b=st.integers(1, 24), out=st.integers(1, 16),
       seed=st.integers(0, 2**16))
def test_linear_of_concat_is_the_linear_of_the_concatenation(rows, k_a, k_b, out, seed):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, rows, k_a, generator=g), torch.randn(2, rows, k_b, generator=g)
    weight, bias = torch.randn(out, k_a + k_b, generator=g), torch.randn(out, generator=g)
    expected = F.linear(torch.cat([a, b], dim=-1), weight, bias)
    got = linear_of_concat(a, b, weight, bias)
    assert got.shape == expected.shape == (2, rows, out)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_linear_gelu_tanh_is_the_tanh_form_on_the_cpu():
    g = torch.Generator().manual_seed(0)
    x, weight, bias = torch.randn(2, 5, 8, generator=g), torch.randn(12, 8, generator=g), torch.randn(12, generator=g)
    pre = F.linear(x, weight, bias)
    got = linear_gelu_tanh(x, weight, bias)
    assert torch.equal(got, F.gelu(pre, approximate="tanh"))
    assert (got - F.gelu(pre)).abs().max() > 1e-5  # the erf form differs: the test can tell them apart


@pytest.mark.skipif(not torch.cuda.is_available(), reason="cuBLASLt's GELU epilogue needs a CUDA GPU")
def test_the_cuda_ops_stay_within_bf16_noise_of_the_reference():
    g = torch.Generator().manual_seed(1)
    x, attn = torch.randn(640, 256, generator=g), torch.randn(640, 128, generator=g)
    w1, b1 = torch.randn(1024, 256, generator=g) / 16, torch.randn(1024, generator=g) / 10
    w2, b2 = torch.randn(256, 1152, generator=g) / 34, torch.randn(256, generator=g) / 10

    def mlp(x, attn, w1, b1, w2, b2, fused):
        h = linear_gelu_tanh(x, w1, b1) if fused else F.gelu(F.linear(x, w1, b1), approximate="tanh")
        return linear_of_concat(attn, h, w2, b2) if fused else F.linear(torch.cat([attn, h], -1), w2, b2)

    exact = mlp(x, attn, w1, b1, w2, b2, fused=False).double()
    bf16 = [t.cuda().bfloat16() for t in (x, attn, w1, b1, w2, b2)]

    def error(fused):
        return float((mlp(*bf16, fused=fused).double().cpu() - exact).norm() / exact.norm())

    assert error(True) <= 1.25 * error(False)  # H100: 0.00278 vs 0.00264 at FLUX's shapes


@pytest.fixture()
def model():
    return build_tiny_bundle().backbone("schnell")


def run(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(1, 16, model.config.in_channels, generator=g)
    with torch.no_grad():
        return model(hidden_states=hidden, timestep=torch.tensor([0.5]),
                     pooled_projections=torch.randn(1, model.config.pooled_projection_dim, generator=g),
                     encoder_hidden_states=torch.randn(1, 3, model.config.joint_attention_dim, generator=g),
                     txt_ids=torch.zeros(3, 3), img_ids=torch.zeros(16, 3), return_dict=False)[0]


def test_installed_model_computes_what_diffusers_computes_and_uninstall_restores_it(model):
    before = run(model)
    originals = {name: m for name, m in model.named_modules() if type(m).__name__ == "GELU"}
    epilogues = MlpEpilogues()
    counts = epilogues.install(model)
    # one per FeedForward (image and text stream of every double block), one forward per single block
    assert counts == {"feed_forward": 2 * len(model.transformer_blocks),
                      "single_blocks": len(model.single_transformer_blocks)}
    assert sum(isinstance(m, EpilogueGELU) for m in model.modules()) == counts["feed_forward"]
    assert all("forward" in vars(b) for b in model.single_transformer_blocks)
    torch.testing.assert_close(run(model), before, rtol=1e-5, atol=1e-5)
    assert not torch.equal(run(model, seed=1), before)  # another input: the comparison above can fail
    epilogues.uninstall()
    assert {name: m for name, m in model.named_modules() if type(m).__name__ == "GELU"} == originals
    assert not any("forward" in vars(b) for b in model.single_transformer_blocks)
    assert torch.equal(run(model), before)


def test_models_with_fp8_layers_give_what_they_give_without_the_epilogues(model):
    """fp8 after the epilogues (memory mode's 8-bit weights) and before them (the lossy mode) give what the
    model without epilogues gives with the same fp8 layers."""
    plain = build_tiny_bundle().backbone("schnell")
    convert_to_8bit(plain, min_features=16)
    expected = run(plain)
    epilogues = MlpEpilogues()
    epilogues.install(model)
    bf16_weight = weakref.ref(model.transformer_blocks[0].ff.net[0].proj.weight)
    convert_to_8bit(model, min_features=16)
    assert torch.equal(run(model), expected)
    gc.collect()
    assert bf16_weight() is None  # the converted layer's weights are freed: the epilogues keep no copy
    epilogues.uninstall()  # the original modules get the converted layers back
    assert torch.equal(run(model), expected)
    converted_first = build_tiny_bundle().backbone("schnell")  # as the lossy mode orders it
    convert_to_8bit(converted_first, min_features=16)
    # the fp8 proj_out gets its input from gelu_cat_quantize: off CUDA, the same torch functions
    counts = MlpEpilogues().install(converted_first)
    assert counts == {"feed_forward": 0, "single_blocks": len(converted_first.single_transformer_blocks)}
    assert torch.equal(run(converted_first), expected)


def test_gelu_cat_quantize_is_the_quantisation_of_the_concatenation():
    g = torch.Generator().manual_seed(3)
    a, m = torch.randn(2, 5, 8, generator=g), 3 * torch.randn(2, 5, 24, generator=g)
    q, scale = gelu_cat_quantize(a, m)
    expected_q, expected_scale = quantize_fp8(torch.cat([a, F.gelu(m, approximate="tanh")], -1).reshape(10, 32), 1)
    assert q.dtype == torch.float8_e4m3fn and q.shape == (10, 32) and scale.shape == (10, 1)
    assert torch.equal(q.float(), expected_q.float()) and torch.equal(scale, expected_scale)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the Triton kernel needs a CUDA GPU")
@pytest.mark.parametrize("rows", [4400, 8])
def test_the_gelu_cat_quantize_kernel_matches_the_torch_form_on_cuda(rows):
    g = torch.Generator().manual_seed(rows)
    a = torch.randn(rows, 3072, generator=g).cuda().bfloat16()
    m = (2 * torch.randn(rows, 12288, generator=g)).cuda().bfloat16()
    q, scale = gelu_cat_quantize(a, m)
    expected_q, expected_scale = quantize_fp8(torch.cat([a, F.gelu(m, approximate="tanh")], -1), 1)
    torch.testing.assert_close(scale, expected_scale, rtol=1e-6, atol=0)
    differ = q.float() != expected_q.float()  # a GELU value on the other side of a bf16 rounding: one e4m3 step
    assert float(differ.float().mean()) < 1e-3
    assert float(((q.float() - expected_q.float()).abs() / expected_q.float().abs().clamp(min=2 ** -6)).max()) <= 0.125


def test_compiled_blocks_of_one_class_still_share_their_graphs(reference):
    """The single blocks' forward is installed per block: a guard on it would compile one graph per block."""
    assert compiled_graph_count(reference, epilogues=True) == compiled_graph_count(reference, epilogues=False) > 0


@pytest.mark.parametrize("backbone,guidance", [("dev", 3.5), ("schnell", 0.0)])
def test_pipeline_with_epilogues_makes_the_same_image_and_restore_removes_them(pipe, reference, backbone, guidance):
    spec = tiny_spec(backbone=backbone, guidance=guidance, steps=3)
    eager = pixels(pipe(spec, reference))
    accelerate(pipe, "lossless", epilogues=False)
    without = pixels(pipe(spec, reference))
    restore(pipe)
    report = accelerate(pipe, "lossless")
    assert "mlp_epilogues" in report["techniques"]
    assert report["transformed"]["gelu_epilogues"] > 0 and report["transformed"]["single_block_forwards"] > 0
    assert np.abs(pixels(pipe(spec, reference)) - without).max() <= 1  # float32 reassociation only
    restore(pipe)
    models = (pipe.bundle.backbone(backbone), pipe.bundle.infusenet)
    assert not any(isinstance(m, EpilogueGELU) for model in models for m in model.modules())
    assert np.array_equal(pixels(pipe(spec, reference)), eager)


def test_a_gelu_that_is_not_the_tanh_form_is_left_alone():
    from diffusers.models.activations import GELU

    block = nn.Sequential(GELU(8, 16, approximate="none"), GELU(8, 16, approximate="tanh"))
    assert MlpEpilogues().install(block) == {"feed_forward": 1, "single_blocks": 0}
    assert type(block[0]) is GELU and isinstance(block[1], EpilogueGELU)
