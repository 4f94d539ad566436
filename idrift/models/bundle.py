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
    # A factory may build anywhere (the real loader and tiny build on the CPU, synthetic on the GPU);
    # `backbone()` runs `backbone_prepare` on the fresh model there, then moves it to `device`.
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
    # Called as hook(name, model) on every freshly built backbone BEFORE it moves to `device`: a weight
    # conversion here (idrift.accel.memory's 8-bit weights) keeps the bf16 weights of a CPU-built
    # backbone off the GPU, so a 24 GB card never holds them.
    backbone_prepare: list[Callable[[str, torch.nn.Module], None]] = field(default_factory=list)
    # Backbone residency (idrift.accel.memory sets these). None: every backbone built so far stays on
    # `device` (the default). A number: before another backbone is made resident, the least recently used
    # ones are evicted - moved to `backbone_offload_device` (kept, moved back on next use) or, when that
    # is None, released (the factory builds it again on next use).
    max_resident_backbones: int | None = None
    backbone_offload_device: torch.device | None = None
    _backbones: dict[str, torch.nn.Module] = field(default_factory=dict, repr=False)  # built: resident or offloaded
    _resident: list[str] = field(default_factory=list, repr=False)  # on `device`, least recently used first
    # One entry per eviction or return: {"backbone", "to", "bytes"} (what moving the backbones cost).
    backbone_moves: list[dict] = field(default_factory=list, repr=False)

    def backbone(self, name: str) -> torch.nn.Module:
        if name not in self.backbone_factories:
            raise KeyError(f"backbone {name!r} is not available in the {self.profile} bundle; "
                           f"have {sorted(self.backbone_factories)}")
        if name not in self._resident:
            if self.max_resident_backbones is not None:  # evict before building: keeps the peak low
                self.evict_backbones(keep=self.max_resident_backbones - 1)
            if name in self._backbones:  # offloaded earlier: move it back
                module = self._backbones[name].to(self.device)
                self.backbone_moves.append({"backbone": name, "to": str(self.device), "bytes": module_bytes(module)})
            else:
                self._backbones[name] = self._build_backbone(name)
        else:
            self._resident.remove(name)
        self._resident.append(name)
        return self._backbones[name]

    def _build_backbone(self, name: str) -> torch.nn.Module:
        model = self.backbone_factories[name]()
        for hook in self.backbone_prepare:
            hook(name, model)
        return model.to(self.device)

    def evict_backbones(self, keep: int) -> None:
        """Evict the least recently used resident backbones until at most `keep` stay on `device`."""
        while len(self._resident) > max(keep, 0):
            evicted = self._resident.pop(0)
            if self.backbone_offload_device is None:
                module = self._backbones.pop(evicted)
                self.backbone_moves.append({"backbone": evicted, "to": "released", "bytes": module_bytes(module)})
            else:
                module = self._backbones[evicted].to(self.backbone_offload_device)
                self.backbone_moves.append({"backbone": evicted, "to": str(self.backbone_offload_device),
                                            "bytes": module_bytes(module)})

    def resident_backbones(self) -> list[str]:
        """Names of the backbones on `device` now, least recently used first."""
        return list(self._resident)

    @property
    def fingerprint(self) -> str:
        """One fingerprint for the whole bundle: goes into every RunSpec and result."""
        import hashlib

        blob = "|".join(f"{k}={v}" for k, v in sorted(self.fingerprints.items()))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers (what moving it between devices copies)."""
    tensors = {id(t): t for t in (*module.parameters(), *module.buffers())}  # tied weights once
    return sum(t.numel() * t.element_size() for t in tensors.values())
