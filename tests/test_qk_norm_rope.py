"""idrift.pipeline.qk_norm_rope: on the tiny CPU profile the processor computes what diffusers' computes
(bitwise: off CUDA the op runs the model's own functions), is installed in every FLUX attention, keeps one
compiled graph per block class and comes out again; on a CUDA machine the Triton kernel is checked against
the same functions (double and single blocks' shapes, batch 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch._dynamo
import torch.nn.functional as F
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor
from tiny_runs import pixels, tiny_spec

from idrift.models.tiny import build_tiny_bundle
from idrift.pipeline.fast import accelerate, restore
from idrift.pipeline.infinite_you import InfiniteYouPipeline
from idrift.pipeline.qk_norm_rope import QKNormRope, QKNormRopeProcessor, qk_norm_rope


def run(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    guidance = torch.tensor([3.5]) if model.config.guidance_embeds else None
    with torch.no_grad():
        return model(guidance=guidance, hidden_states=torch.randn(1, 16, model.config.in_channels, generator=g),
                     timestep=torch.tensor([0.5]),
                     pooled_projections=torch.randn(1, model.config.pooled_projection_dim, generator=g),
                     encoder_hidden_states=torch.randn(1, 3, model.config.joint_attention_dim, generator=g),
                     txt_ids=torch.zeros(3, 3), img_ids=torch.randint(0, 4, (16, 3), generator=g).float(),
                     return_dict=False)[0]


def test_the_processor_computes_what_diffusers_computes_and_uninstall_restores_it():
    model = build_tiny_bundle().backbone("dev")
    before = run(model)
    originals = {name: m.processor for name, m in model.named_modules() if hasattr(m, "processor")}
    fused = QKNormRope()
    assert fused.install(model) == len(model.transformer_blocks) + len(model.single_transformer_blocks)
    assert fused.install(model) == 0  # installed once
    assert all(isinstance(m.processor, QKNormRopeProcessor) for m in model.modules() if hasattr(m, "processor"))
    assert torch.equal(run(model), before)
    assert not torch.equal(run(model, seed=1), before)  # another input: the comparison above can fail
    fused.uninstall()
    assert {name: m.processor for name, m in model.named_modules() if hasattr(m, "processor")} == originals
    assert all(type(p) is FluxAttnProcessor for p in originals.values())


def test_compiled_blocks_of_one_class_still_share_their_graphs(reference):
    graphs = {}
    for fused in (False, True):
        pipe = InfiniteYouPipeline(build_tiny_bundle())
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        accelerate(pipe, "lossless", compile=True, backend="aot_eager", qk_norm_rope=fused)
        pipe(tiny_spec(backbone="schnell", guidance=0.0, steps=2), reference)
        graphs[fused] = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    assert graphs[True] == graphs[False] > 0


def test_accelerate_installs_it_and_restore_takes_it_out(pipe, reference):
    spec = tiny_spec(backbone="schnell", guidance=0.0, steps=2)
    eager = pixels(pipe(spec, reference))
    report = accelerate(pipe, "lossless", epilogues=False, modulation=False, vae=False)
    assert report["techniques"] == ["qk_norm_rope"]
    models = (pipe.bundle.backbone("schnell"), pipe.bundle.infusenet)
    n_attn = sum(len(m.transformer_blocks) + len(m.single_transformer_blocks) for m in models)
    assert report["transformed"]["qk_norm_rope_attentions"] == n_attn
    assert np.array_equal(pixels(pipe(spec, reference)), eager)  # on a CPU: the model's own functions
    restore(pipe)
    assert not any(isinstance(m.processor, QKNormRopeProcessor) for model in models for m in model.modules()
                   if hasattr(m, "processor"))


def reference_norm_rope(text, image, text_weight, image_weight, cos, sin, eps):
    parts = ([] if text is None else [(text, text_weight)]) + [(image, image_weight)]
    normed = torch.cat([F.rms_norm(p, (p.shape[-1],), w, eps) for p, w in parts], dim=1)
    return apply_rotary_emb(normed, (cos, sin), sequence_dim=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the Triton kernel needs a CUDA GPU")
@pytest.mark.parametrize("text_tokens", [512, 8, 0])  # FLUX's text, InfuseNet's identity tokens, a single block
def test_the_kernel_matches_the_models_functions_on_cuda(text_tokens):
    g = torch.Generator().manual_seed(text_tokens)
    heads, dim, image_tokens = 24, 128, 1000
    dt = torch.bfloat16
    image = (torch.randn(2, image_tokens, heads, dim, generator=g) * 3).cuda().to(dt)
    text = (torch.randn(2, text_tokens, heads, dim, generator=g) * 3).cuda().to(dt) if text_tokens else None
    image_weight = (1 + 0.1 * torch.randn(dim, generator=g)).cuda().to(dt)
    text_weight = (1 + 0.1 * torch.randn(dim, generator=g)).cuda().to(dt) if text_tokens else None
    angles = torch.rand(text_tokens + image_tokens, dim // 2, generator=g) * 6.3
    cos = angles.cos().repeat_interleave(2, dim=1).cuda()
    sin = angles.sin().repeat_interleave(2, dim=1).cuda()
    args = (text, image, text_weight, image_weight, cos, sin, 1e-6)
    with torch.no_grad():
        fused = qk_norm_rope(*args)
        eager = reference_norm_rope(*args)
        exact = reference_norm_rope(*(a.double().cpu() if isinstance(a, torch.Tensor) else a for a in args))
    assert fused.shape == eager.shape == (2, text_tokens + image_tokens, heads, dim)
    assert fused.transpose(1, 2).is_contiguous()  # the layout attention reads

    def error(t):
        return float((t.double().cpu() - exact).norm() / exact.norm())

    # the same roundings as torch's fused RMSNorm on CUDA; only the float32 sum of squares differs
    assert error(fused) <= 1.05 * error(eager)
    assert float((fused.float() - eager.float()).abs().max()) <= 2 ** -6 * float(eager.float().abs().max())
