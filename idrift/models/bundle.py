"""The set of models one profile provides to the InfiniteYou pipeline.

Every profile (tiny, synthetic, real) builds the same `ModelBundle`, so the pipeline, the metrics and
the benchmarks never branch on the profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class ModelBundle:
    profile: str
    device: torch.device
    dtype: torch.dtype
    # Backbones are built on first use: a real run of one claim family seldom needs both in memory.
    backbone_factories: dict[str, Callable[[], torch.nn.Module]]
    infusenet: torch.nn.Module  # diffusers FluxControlNetModel
    image_proj: torch.nn.Module  # idrift.models.resampler.Resampler
    id_encoder: torch.nn.Module  # idrift.models.ir_se50.IRSE50 (ArcFace IR-SE50)
    vae: torch.nn.Module  # diffusers AutoencoderKL
    text_encoder: torch.nn.Module  # CLIP text model (pooled embedding)
    tokenizer: object
    text_encoder_2: torch.nn.Module  # T5 encoder
    tokenizer_2: object
    # FlowMatchEulerDiscreteScheduler config per backbone (dev shifts its schedule by resolution, schnell
    # does not): part of what "the backbone path" selects. A fresh scheduler is made per run.
    scheduler_configs: dict[str, dict]
    fingerprints: dict[str, str] = field(default_factory=dict)  # component -> fingerprint
    max_sequence_length: int = 512
    _backbones: dict[str, torch.nn.Module] = field(default_factory=dict, repr=False)

    def backbone(self, name: str) -> torch.nn.Module:
        if name not in self.backbone_factories:
            raise KeyError(f"backbone {name!r} is not available in the {self.profile} bundle; have {sorted(self.backbone_factories)}")
        if name not in self._backbones:
            self._backbones[name] = self.backbone_factories[name]()
        return self._backbones[name]

    @property
    def fingerprint(self) -> str:
        """One fingerprint for the whole bundle: goes into every RunSpec and result."""
        import hashlib

        blob = "|".join(f"{k}={v}" for k, v in sorted(self.fingerprints.items()))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
