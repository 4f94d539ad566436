"""CLIP-T: how well a generated image matches its prompt, as CLIP sees it (higher is better).

The value is the raw cosine similarity between CLIP's projected image embedding and its projected text
embedding, in [-1, 1]. CLIPScore (Hessel et al. 2021) is 100 * max(cos, 0) of the same cosine: idrift
stores the cosine itself because the clip at 0 would flatten random-weight values (tiny profile) to a
constant, and rank correlations and deltas need no rescaling. Multiply by 100 to compare with papers
that report CLIPScore on positive values.

Preprocessing is the model folder's own (CLIPImageProcessor from preprocessor_config.json): shortest
side resized to 224 px, centre crop 224 x 224 for ViT-L/14, CLIP's mean/std. A portrait 864 x 1152
image thus loses its top and bottom eighth, as in CLIPScore. Prompts longer than the text tower's 77
tokens are truncated (CLIP's context length), as every CLIPScore implementation does.

Weights: `openai/clip-vit-large-patch14` on `real` (idrift.models.clip); a tiny random CLIP in the same
layout on tiny and synthetic, whose numbers are golden values only. The version carries the model
folder's fingerprint, so other weights re-measure the stored values.

Example:
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> from idrift.models.clip import save_tiny_clip
    >>> metric = ClipT(save_tiny_clip(tempfile.mkdtemp()), source="tiny")
    >>> image = Image.fromarray(np.full((64, 48, 3), 128, np.uint8))
    >>> -1.0 <= metric.score(image, "a portrait photo") <= 1.0
    True
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from idrift.metrics import MeasuredSample, MetricSetup

_IMPL_REVISION = 1  # bump when idrift's preprocessing or the formula changes, so stored values are recomputed
VARIANT = "cosine"  # raw cosine of the projected embeddings; CLIPScore would be 100 * max(cos, 0)


class ClipT:
    """CLIP-T of one image against one prompt text. The model loads on the first score."""

    name = "clip_t"

    def __init__(self, folder: str | Path | Callable[[], Path], device: str = "cpu", source: str | None = None,
                 fingerprint: str | None = None):
        """`folder`: a CLIP folder, or a function that makes one on first use (then `fingerprint` says
        which weights it will hold, so that a session's provenance builds nothing)."""
        from idrift.models.fingerprint import fingerprint_folder

        self._folder = folder if callable(folder) else Path(folder)
        self.device = device
        self.source = source or str(folder)
        self.fingerprint = fingerprint or fingerprint_folder(self.folder)
        self.version = f"clip_t/{VARIANT}-{_IMPL_REVISION}:{self.fingerprint}"
        self._clip = None
        self._text_cache: dict[str, object] = {}  # prompt text -> normalised text embedding

    @classmethod
    def build(cls, setup: MetricSetup) -> ClipT:
        """openai/clip-vit-large-patch14 (or --idrift-clip) on `real`; the tiny random CLIP elsewhere,
        saved under the cache folder when the first image is scored."""
        from idrift.models.clip import tiny_clip_fingerprint, tiny_clip_folder

        if setup.profile == "real":
            return cls(setup.weights.location("clip"), device=setup.device, source=str(setup.weights.clip))
        return cls(lambda: tiny_clip_folder(Path(setup.cache_dir) / "models"), device=setup.device,
                   source="tiny random CLIP (idrift.models.clip.save_tiny_clip)", fingerprint=tiny_clip_fingerprint())

    @property
    def folder(self) -> Path:
        if callable(self._folder):
            self._folder = Path(self._folder())
        return self._folder

    @property
    def clip(self):
        if self._clip is None:
            from idrift.models.clip import load_clip

            self._clip = load_clip(self.folder, self.device)
        return self._clip

    def _text_embedding(self, text: str):
        import torch

        if text not in self._text_cache:
            clip = self.clip
            tokens = clip.tokenizer([text], padding=True, truncation=True, max_length=77, return_tensors="pt")
            with torch.no_grad():
                out = clip.model.get_text_features(input_ids=tokens["input_ids"].to(clip.device),
                                                   attention_mask=tokens["attention_mask"].to(clip.device))
            out = getattr(out, "pooler_output", out)  # a tensor, or (newer transformers) an output object
            self._text_cache[text] = torch.nn.functional.normalize(out.float(), dim=-1)[0]
        return self._text_cache[text]

    def _image_embedding(self, image):
        import torch

        clip = self.clip
        pixels = clip.image_processor(images=[image.convert("RGB")], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            out = clip.model.get_image_features(pixel_values=pixels.to(clip.device))
        out = getattr(out, "pooler_output", out)
        return torch.nn.functional.normalize(out.float(), dim=-1)[0]

    def score(self, image, text: str) -> float:
        """Cosine similarity of `image` (a PIL image) and `text` in CLIP's joint space, in [-1, 1]."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"CLIP-T needs the prompt text of the image, got {text!r}")
        return float((self._image_embedding(image) @ self._text_embedding(text)).item())

    def measure(self, sample: MeasuredSample) -> dict:
        return {"clip_t": self.score(sample.image, sample.prompt)}

    def provenance(self) -> dict:
        folder = None if callable(self._folder) else str(self._folder)  # not made yet: nothing scored so far
        return {"model": self.source, "folder": folder, "fingerprint": self.fingerprint,
                "variant": VARIANT, "version": self.version, "max_tokens": 77,
                "preprocessing": "the folder's CLIPImageProcessor (shortest side resize, centre crop)"}
