"""CLIP for text alignment (CLIP-T): where the weights are, their layout check, the loader, a tiny one.

The `real` profile reads `openai/clip-vit-large-patch14` (ViT-L/14, the CLIP of CLIPScore and of most
text-to-image papers) from the Hugging Face cache, or a local folder in the same layout, set with
`--idrift-clip` (pytest), `--clip` (`idrift run`, `idrift weights check`) or `IDRIFT_CLIP`
(idrift.models.paths.WEIGHT_OPTIONS). A folder holds what `CLIPModel.save_pretrained` and a tokenizer's
`save_pretrained` write: `config.json` (model_type "clip"), `model.safetensors` (or a shard index, or
`pytorch_model.bin`), tokenizer files and `preprocessor_config.json`. idrift never downloads.

The tiny and synthetic profiles use a tiny random CLIP saved in that same layout (`save_tiny_clip`), so
the one loader (`load_clip`) and the layout check run on every profile. Its numbers mean nothing about
text: they are golden values, like every figure of random weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from idrift.errors import WeightsError
from idrift.models.component_checks import clip_layout_problems  # the layout check lives with the others
from idrift.models.paths import DEFAULT_CLIP  # noqa: F401  (part of this module's API: the default CLIP)

TINY_SEED = 0
TINY_CONFIG = {
    "text": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                 max_position_embeddings=77),
    "vision": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                   image_size=32, patch_size=8),
    "projection_dim": 16,
}


@dataclass
class LoadedClip:
    model: object  # transformers.CLIPModel, eval mode, on `device`
    tokenizer: object
    image_processor: object
    device: str
    folder: Path


def load_clip(folder: str | Path, device: str = "cpu") -> LoadedClip:
    """CLIPModel, its tokenizer and image processor from one folder, float32, eval mode. Raises
    WeightsError naming the folder when its layout is wrong."""
    import torch
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    folder = Path(folder)
    problems = clip_layout_problems(folder, str(folder))
    if problems:
        raise WeightsError("CLIP weights for CLIP-T: " + "; ".join(problems) + "; set --idrift-clip or IDRIFT_CLIP")
    model = CLIPModel.from_pretrained(folder, torch_dtype=torch.float32).to(device).eval()
    return LoadedClip(model=model, tokenizer=AutoTokenizer.from_pretrained(folder),
                      image_processor=CLIPImageProcessor.from_pretrained(folder), device=device, folder=folder)


def _tiny_vocabulary() -> list[str]:
    """The words of idrift's prompt sets (lower case), so that every prompt tokenises to its own ids."""
    import re

    from idrift.data.prompts import PROMPTS_DIR, load_prompt_set

    words: dict[str, None] = {}
    for file in sorted(PROMPTS_DIR.glob("*.json")):
        for prompt in load_prompt_set(file.stem).prompts:
            words.update(dict.fromkeys(re.findall(r"[a-z0-9]+|[^\sa-z0-9]", prompt.text.lower())))
    return sorted(words)


def save_tiny_clip(folder: str | Path, seed: int = TINY_SEED) -> Path:
    """A tiny random CLIPModel, its word-level tokenizer and image processor, saved to `folder` in the
    real layout. Deterministic: the same seed writes the same weights (and folder fingerprint)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<unk>": 1, "<|startoftext|>": 2, "<|endoftext|>": 3}
    for word in _tiny_vocabulary():
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", 2), ("<|endoftext|>", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                        bos_token="<|startoftext|>", eos_token="<|endoftext|>", model_max_length=77)
    config = CLIPConfig(
        text_config=dict(TINY_CONFIG["text"], vocab_size=len(vocab), pad_token_id=0, bos_token_id=2, eos_token_id=3),
        vision_config=TINY_CONFIG["vision"], projection_dim=TINY_CONFIG["projection_dim"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    size = TINY_CONFIG["vision"]["image_size"]
    CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(folder)
    return folder


def _tiny_blob(seed: int) -> str:
    import json

    import transformers

    return json.dumps({"config": TINY_CONFIG, "seed": seed, "vocab": _tiny_vocabulary(),
                       "transformers": transformers.__version__}, sort_keys=True)


def tiny_clip_fingerprint(seed: int = TINY_SEED) -> str:
    """The tiny CLIP's fingerprint from its builder, config, vocabulary and seed (as the tiny bundle's
    components have: idrift.provenance.random_weights_fingerprint), known without building it."""
    import hashlib

    from idrift.provenance import random_weights_fingerprint

    vocab = hashlib.sha256(" ".join(_tiny_vocabulary()).encode()).hexdigest()[:12]
    return random_weights_fingerprint("tiny", "clip", dict(TINY_CONFIG, vocab=vocab), seed)


def tiny_clip_folder(cache_dir: str | Path, seed: int = TINY_SEED) -> Path:
    """The tiny random CLIP saved under `cache_dir` (built once per config and seed; concurrent processes
    each write a temporary folder and the first to rename it wins, so nobody reads a half-written one)."""
    import hashlib
    import os
    import shutil
    import tempfile

    folder = Path(cache_dir) / f"tiny-clip-{hashlib.sha256(_tiny_blob(seed).encode()).hexdigest()[:12]}"
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-clip-", dir=folder.parent))
    save_tiny_clip(staging, seed)
    try:
        os.rename(staging, folder)
    except OSError:  # another process renamed its copy first: use that one
        shutil.rmtree(staging, ignore_errors=True)
    return folder
