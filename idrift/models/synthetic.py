"""The `synthetic` profile: the real architectures at real size with random weights.

For latency and memory at true scale with nothing to download: FLUX transformer 11.9B parameters,
InfuseNet 2.95B, T5-XXL encoder 4.76B, CLIP-L, the FLUX VAE, the Resampler and IR-SE50. Each is built
directly on the GPU in bf16 (under a `torch.device` context and a bf16 default dtype), so no fp32 CPU
copy is ever made. Identity numbers from these weights mean nothing and are never judged.
"""

from __future__ import annotations

import contextlib

import torch
from diffusers import AutoencoderKL, FluxControlNetModel, FluxTransformer2DModel
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from idrift.models.backbones import BY_NAME, REGISTRY
from idrift.models.bundle import ModelBundle
from idrift.models.ir_se50 import IRSE50
from idrift.models.resampler import Resampler
from idrift.models.tiny import _word_level_tokenizer
from idrift.provenance import random_weights_fingerprint

FLUX_CONFIG = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                   num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                   axes_dims_rope=(16, 56, 56))
INFUSENET_CONFIG = dict(FLUX_CONFIG, num_layers=4, num_single_layers=10, guidance_embeds=True)
VAE_CONFIG = dict(in_channels=3, out_channels=3, latent_channels=16, down_block_types=["DownEncoderBlock2D"] * 4,
                  up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512],
                  layers_per_block=2, norm_num_groups=32, act_fn="silu", sample_size=1024,
                  scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)
CLIP_CONFIG = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                   num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
T5_CONFIG = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                 feed_forward_proj="gated-gelu", dropout_rate=0.0, relative_attention_num_buckets=32)
RESAMPLER_CONFIG = dict(dim=1280, depth=4, dim_head=64, heads=20, num_queries=8, embedding_dim=512,
                        output_dim=4096, ff_mult=4)
MAX_SEQUENCE_LENGTH = 512


@contextlib.contextmanager
def _build_on(device: torch.device, dtype: torch.dtype, seed: int):
    """Allocate parameters on `device` in `dtype` from the start, under a fixed seed."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), device:
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_default_dtype(previous)



def build_synthetic_bundle(seed: int = 0, device: str = "cuda", dtype: torch.dtype = torch.bfloat16) -> ModelBundle:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("the synthetic profile builds real-size models on a GPU; no CUDA device is available")

    def backbone(name: str) -> FluxTransformer2DModel:  # as tiny.build_backbone, at real size
        entry = BY_NAME[name]
        with _build_on(dev, dtype, seed + entry.seed_offset):
            return FluxTransformer2DModel(**entry.transformer_config(FLUX_CONFIG)).eval()

    with _build_on(dev, dtype, seed + 1):
        infusenet = FluxControlNetModel(**INFUSENET_CONFIG).eval()
        # Zero-initialised output blocks would make InfuseNet's residuals exactly zero; timing does
        # not care, but keep the residual path numerically live like the tiny profile does.
        for layer in [
            infusenet.controlnet_x_embedder, *infusenet.controlnet_blocks, *infusenet.controlnet_single_blocks
        ]:
            torch.nn.init.normal_(layer.weight, std=0.02)
    with _build_on(dev, dtype, seed + 3):
        image_proj = Resampler(**RESAMPLER_CONFIG).eval()
    with _build_on(dev, dtype, seed + 4):
        vae = AutoencoderKL(**VAE_CONFIG).eval()
    with _build_on(dev, dtype, seed + 5):
        text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_CONFIG)).eval()
    with _build_on(dev, dtype, seed + 6):
        text_encoder_2 = T5EncoderModel(T5Config(**T5_CONFIG)).eval()
    with _build_on(dev, dtype, seed + 7):
        id_encoder = IRSE50().eval()

    fingerprints = {
        **{b.component: random_weights_fingerprint("synthetic", b.name, b.transformer_config(FLUX_CONFIG), seed)
           for b in REGISTRY},
        "infusenet": random_weights_fingerprint("synthetic", "infusenet", INFUSENET_CONFIG, seed),
        "image_proj": random_weights_fingerprint("synthetic", "image_proj", RESAMPLER_CONFIG, seed),
        "vae": random_weights_fingerprint("synthetic", "vae", VAE_CONFIG, seed),
        "text_encoders": random_weights_fingerprint("synthetic", "text", {"clip": CLIP_CONFIG, "t5": T5_CONFIG}, seed),
        "arcface_ir_se50": random_weights_fingerprint("synthetic", "ir_se50", {}, seed),
    }
    return ModelBundle(
        profile="synthetic", device=dev, dtype=dtype,
        backbone_factories={b.name: (lambda name=b.name: backbone(name)) for b in REGISTRY},
        infusenet=infusenet, image_proj=image_proj, id_encoder=id_encoder, vae=vae,
        text_encoder=text_encoder, tokenizer=_word_level_tokenizer("</s>", 77),
        text_encoder_2=text_encoder_2, tokenizer_2=_word_level_tokenizer("</s>", MAX_SEQUENCE_LENGTH),
        scheduler_configs={b.name: dict(b.scheduler) for b in REGISTRY},
        fingerprints=fingerprints, max_sequence_length=MAX_SEQUENCE_LENGTH,
    )
