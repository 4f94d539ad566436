"""The `tiny` profile: every model of the InfiniteYou pipeline, random and small, built in code.

Same classes as the real checkpoints (diffusers' FluxTransformer2DModel, FluxControlNetModel,
AutoencoderKL; transformers' CLIPTextModel and T5EncoderModel; idrift's Resampler and IR-SE50), so
the pipeline, loaders and benchmarks run unchanged on a CPU in seconds. Deterministic: each
component is seeded on its own, so the same call builds bitwise-identical weights.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, FluxControlNetModel, FluxTransformer2DModel
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5EncoderModel,
)

from idrift.models.backbones import BY_NAME, REGISTRY
from idrift.models.bundle import ModelBundle
from idrift.models.ir_se50 import IRSE50
from idrift.models.resampler import Resampler
from idrift.provenance import random_weights_fingerprint

# One width for text, identity tokens and the transformers, as 4096 is in the real models.
TEXT_DIM = 32
POOLED_DIM = 32
HEAD_DIM = 16
HEADS = 2
ROPE_AXES = (4, 6, 6)  # sums to HEAD_DIM, as (16, 56, 56) sums to 128 in FLUX
LATENT_CHANNELS = 4  # FLUX: 16; packing 2x2 gives the transformer 4x that
T5_MAX_LENGTH = 32
CLIP_MAX_LENGTH = 77

_WORDS = (
    "a an the of in on at with and photo portrait person man woman face smiling wearing suit beach sunset "
    "studio light lighting professional close-up realistic painting oil style anime cinematic hair red blue "
    "glasses old young city street forest background detailed shirt dress hat dramatic soft natural"
).split()

TRANSFORMER_CONFIG = dict(patch_size=1, in_channels=LATENT_CHANNELS * 4, num_layers=2, num_single_layers=4,
                          attention_head_dim=HEAD_DIM, num_attention_heads=HEADS, joint_attention_dim=TEXT_DIM,
                          pooled_projection_dim=POOLED_DIM, axes_dims_rope=ROPE_AXES)
# InfuseNet has fewer blocks than the backbone (real: 4 + 10 against 19 + 38), so one residual feeds
# several backbone blocks: the tiny model keeps that ratio above 1 to exercise the routing.
INFUSENET_CONFIG = dict(TRANSFORMER_CONFIG, num_layers=1, num_single_layers=2, guidance_embeds=True)
VAE_CONFIG = dict(in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
                  down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                  block_out_channels=[8, 8, 8, 8], layers_per_block=1, norm_num_groups=4,
                  scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)
RESAMPLER_CONFIG = dict(dim=32, depth=2, dim_head=8, heads=4, num_queries=8, embedding_dim=512,
                        output_dim=TEXT_DIM, ff_mult=2)


def _isolated_rng():
    """Seed modules inside without changing the caller's global RNG state."""
    return torch.random.fork_rng(devices=[])


def _word_level_tokenizer(eos: str, max_length: int) -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "<s>": 3}
    for word in _WORDS:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.post_processor = processors.TemplateProcessing(single=f"$A {eos}", special_tokens=[(eos, vocab[eos])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token=eos, unk_token="<unk>",
                                   model_max_length=max_length)


def build_tokenizers() -> tuple[PreTrainedTokenizerFast, PreTrainedTokenizerFast]:
    """CLIP-like and T5-like tokenizers over a small fixed vocabulary (no files, no downloads)."""
    return _word_level_tokenizer("</s>", CLIP_MAX_LENGTH), _word_level_tokenizer("</s>", T5_MAX_LENGTH)


def _randomise_zero_init(controlnet: FluxControlNetModel, seed: int) -> None:
    """A fresh FluxControlNetModel zero-initialises its output blocks and is inert; give it weights,
    or every test of the identity path would pass vacuously."""
    gen = torch.Generator().manual_seed(seed)
    zeroed = [controlnet.controlnet_x_embedder, *controlnet.controlnet_blocks, *controlnet.controlnet_single_blocks]
    with torch.no_grad():
        for layer in zeroed:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.2)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen) * 0.05)


def build_backbone(name: str, seed: int = 0) -> FluxTransformer2DModel:
    """The random backbone `name` of `idrift.models.backbones`: dev-like (with a guidance embedding) or
    schnell-like (without), each seeded with its own offset, so that no two backbones share weights."""
    backbone = BY_NAME[name]
    with _isolated_rng():
        torch.manual_seed(seed + backbone.seed_offset)
        model = FluxTransformer2DModel(**backbone.transformer_config(TRANSFORMER_CONFIG))
    return model.eval()


def build_components(seed: int = 0) -> dict:
    """All tiny components, each seeded on its own so adding one never changes another."""
    clip_tok, t5_tok = build_tokenizers()
    out: dict = {"tokenizer": clip_tok, "tokenizer_2": t5_tok}
    with _isolated_rng():
        torch.manual_seed(seed + 1)
        out["infusenet"] = FluxControlNetModel(**INFUSENET_CONFIG)
        _randomise_zero_init(out["infusenet"], seed + 2)
        torch.manual_seed(seed + 3)
        out["image_proj"] = Resampler(**RESAMPLER_CONFIG)
        torch.manual_seed(seed + 4)
        out["vae"] = AutoencoderKL(**VAE_CONFIG)
        torch.manual_seed(seed + 5)
        out["text_encoder"] = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(clip_tok), hidden_size=POOLED_DIM, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=CLIP_MAX_LENGTH, pad_token_id=0, bos_token_id=3,
            eos_token_id=1))
        torch.manual_seed(seed + 6)
        out["text_encoder_2"] = T5EncoderModel(T5Config(
            vocab_size=len(t5_tok), d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
        torch.manual_seed(seed + 7)
        out["id_encoder"] = IRSE50()
    for name in ("infusenet", "image_proj", "vae", "text_encoder", "text_encoder_2", "id_encoder"):
        out[name].eval()  # configs build in training mode: dropout would make runs differ
    return out



def build_tiny_bundle(seed: int = 0, device: str = "cpu") -> ModelBundle:
    parts = build_components(seed)
    dev = torch.device(device)
    for name in ("infusenet", "image_proj", "vae", "text_encoder", "text_encoder_2", "id_encoder"):
        parts[name].to(dev)
    fingerprints = {
        **{b.component: random_weights_fingerprint("tiny", b.name, b.transformer_config(TRANSFORMER_CONFIG), seed)
           for b in REGISTRY},
        "infusenet": random_weights_fingerprint("tiny", "infusenet", INFUSENET_CONFIG, seed),
        "image_proj": random_weights_fingerprint("tiny", "image_proj", RESAMPLER_CONFIG, seed),
        "vae": random_weights_fingerprint("tiny", "vae", VAE_CONFIG, seed),
        "text_encoders": random_weights_fingerprint("tiny", "text", {"dim": TEXT_DIM, "pooled": POOLED_DIM}, seed),
        "arcface_ir_se50": random_weights_fingerprint("tiny", "ir_se50", {}, seed),
    }
    return ModelBundle(
        profile="tiny",
        device=dev,
        dtype=torch.float32,
        # Built on the CPU; the bundle moves it.
        backbone_factories={b.name: (lambda name=b.name: build_backbone(name, seed)) for b in REGISTRY},
        infusenet=parts["infusenet"],
        image_proj=parts["image_proj"],
        id_encoder=parts["id_encoder"],
        vae=parts["vae"],
        text_encoder=parts["text_encoder"],
        tokenizer=parts["tokenizer"],
        text_encoder_2=parts["text_encoder_2"],
        tokenizer_2=parts["tokenizer_2"],
        scheduler_configs={b.name: dict(b.scheduler) for b in REGISTRY},
        fingerprints=fingerprints,
        max_sequence_length=T5_MAX_LENGTH,
    )
