"""Write the tiny profile in the exact on-disk layout of the real weights.

`save_tiny_as_real_layout(root)` lets tests - and users debugging their own folders - run the very
loader (`idrift.models.real.load_real_bundle`) and layout check (`idrift weights check`) that real
runs use, on a CPU, in seconds:

```
root/
  FLUX.1-dev/      model_index.json, transformer/ (sharded), scheduler/, vae/, text_encoder/,
                   text_encoder_2/ (sharded), tokenizer/, tokenizer_2/
  FLUX.1-schnell/  the same, with the schnell-like transformer and scheduler
                   (one such folder per backbone of idrift.models.backbones, named by its title)
  InfiniteYou/infu_flux_v1.0/aes_stage2/
                   InfuseNetModel/ (config.json + sharded safetensors with an index),
                   image_proj_model.bin ({"image_proj": Resampler state dict}),
                   image_proj_config.json (the tiny Resampler's size; real folders have none)
  recognition_arcface_ir_se50.pth
```

antelopev2 and VGG16 have no tiny counterpart and are not written: the returned WeightPaths leaves
them at their defaults.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from idrift.models.backbones import REGISTRY
from idrift.models.paths import ARCFACE_FILE, IMAGE_PROJ_CONFIG_FILE, IMAGE_PROJ_FILE, INFU_VERSION_DIR, WeightPaths

# Small shards, so the tiny layout exercises the sharded (index + shards) path of the real checkpoints.
_SHARD = "200KB"


def _model_index(diffusers_version: str) -> dict:
    return {
        "_class_name": "FluxPipeline",
        "_diffusers_version": diffusers_version,
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "tokenizer_2": ["transformers", "PreTrainedTokenizerFast"],
        "transformer": ["diffusers", "FluxTransformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def _tiny_infusenet(seed: int) -> torch.nn.Module:
    """Another tiny InfuseNet (for a second variant), built the way `tiny.build_components` builds one."""
    from diffusers import FluxControlNetModel

    from idrift.models import tiny

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FluxControlNetModel(**tiny.INFUSENET_CONFIG)
    tiny._randomise_zero_init(model, seed + 1)
    return model.eval()


def save_tiny_as_real_layout(root: str | Path, seed: int = 0, variants: Sequence[str] = ("aes_stage2",)) -> WeightPaths:
    """Write the tiny components (seeded with `seed`) under `root` in the real layout; return their WeightPaths.

    `variants`: InfiniteYou variants to write. "aes_stage2" gets the InfuseNet and Resampler of
    `tiny.build_components(seed)`; any other variant gets its own random InfuseNet and the same Resampler.
    """
    import diffusers
    from diffusers import FlowMatchEulerDiscreteScheduler

    from idrift.models import tiny

    root = Path(root)
    parts = tiny.build_components(seed)
    flux_dirs = {}
    for backbone in REGISTRY:
        folder = root / backbone.title
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model_index.json").write_text(json.dumps(_model_index(diffusers.__version__), indent=2))
        tiny.build_backbone(backbone.name, seed).save_pretrained(folder / "transformer", max_shard_size=_SHARD)
        FlowMatchEulerDiscreteScheduler(**backbone.scheduler).save_pretrained(folder / "scheduler")
        parts["vae"].save_pretrained(folder / "vae")
        parts["text_encoder"].save_pretrained(folder / "text_encoder")
        parts["text_encoder_2"].save_pretrained(folder / "text_encoder_2", max_shard_size="20KB")
        parts["tokenizer"].save_pretrained(folder / "tokenizer")
        parts["tokenizer_2"].save_pretrained(folder / "tokenizer_2")
        flux_dirs[backbone.component] = str(folder)

    infiniteyou = root / "InfiniteYou"
    for i, variant in enumerate(variants):
        variant_dir = infiniteyou / INFU_VERSION_DIR / variant
        variant_dir.mkdir(parents=True, exist_ok=True)
        infusenet = parts["infusenet"] if variant == "aes_stage2" else _tiny_infusenet(seed + 1000 + 10 * i)
        infusenet.save_pretrained(variant_dir / "InfuseNetModel", max_shard_size=_SHARD)
        torch.save({"image_proj": parts["image_proj"].state_dict()}, variant_dir / IMAGE_PROJ_FILE)
        # Only this writer produces image_proj_config.json: the tiny Resampler is smaller than InfiniteYou's.
        # Real folders have none, and load_real_bundle then uses the real hyper-parameters.
        (variant_dir / IMAGE_PROJ_CONFIG_FILE).write_text(json.dumps(tiny.RESAMPLER_CONFIG, indent=2))

    arcface = root / ARCFACE_FILE
    torch.save(parts["id_encoder"].state_dict(), arcface)
    return WeightPaths(
        **flux_dirs,
        infiniteyou=str(infiniteyou),
        infu_variant=variants[0] if variants else "aes_stage2",
        arcface_ir_se50=str(arcface),
    )
