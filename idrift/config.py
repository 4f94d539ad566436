"""Run specifications and profiles.

A `RunSpec` is one generated sample, as a frozen value. Its `key` (a hash of every field) names the
sample's image and its row in the results store, so a rerun finds finished work and a changed field
never reuses a stale image.

`RunSpec.loras` names the LoRAs loaded on the backbone (InfiniteYou's realism / anti-blur LoRAs or any
FLUX LoRA: file fingerprint and scale each, `idrift.models.lora.lora_label`); part of the key as well.

`RunSpec.acceleration` names the numerical path that made the image: the label of an
`idrift.accel.plan.AccelerationPlan` ("eager", "stock-compile", "lossless", "lossy:fp8", ...), from the
claim's arm or the session's options. It is part of the key, so that a resumed or shared store never mixes
images of an accelerated pipeline with the reference path's.

`RunSpec.method` names who made the image: "" (idrift's own pipeline, from this spec) or the label of
another identity method (InfiniteYou's release, PuLID, InstantID, ...) whose image `idrift score`
measured. What idrift does not know of such an image is left empty: backbone "", steps 0 when no step
budget was given, guidance, alpha, width and height 0. Left out of the key while "".
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field

from idrift.accel.plan import EAGER, AccelerationPlan  # torch-free
from idrift.accel.plan import MEMORY_MODES as MEMORY_MODES  # re-exported: --idrift-memory
from idrift.models.backbones import REGISTRY as BACKBONE_REGISTRY  # torch-free

PROFILES: tuple[str, ...] = ("tiny", "synthetic", "real")
BACKBONES: tuple[str, ...] = tuple(b.name for b in BACKBONE_REGISTRY)  # one per idrift.models.backbones entry


@dataclass(frozen=True)
class ProfileDefaults:
    """What a profile generates by default: size, precision, device."""

    width: int
    height: int
    dtype: str
    device: str  # "cpu", "cuda" or "auto" (cuda when present)


PROFILE_DEFAULTS: dict[str, ProfileDefaults] = {
    # Tiny random models: 64x64 keeps a 28-step run well under a second on a CPU.
    "tiny": ProfileDefaults(width=64, height=64, dtype="float32", device="cpu"),
    # Real sizes (InfiniteYou's default 864x1152, W x H) with random weights, for latency and memory.
    "synthetic": ProfileDefaults(width=864, height=1152, dtype="bfloat16", device="cuda"),
    "real": ProfileDefaults(width=864, height=1152, dtype="bfloat16", device="auto"),
}

# The baseline each profile gates against when none is named (a file of idrift.baselines.io.baselines_dir()).
DEFAULT_BASELINE = {"tiny": "tiny-cpu", "synthetic": "h200-synthetic", "real": "paper"}

# Each backbone's default guidance (idrift.models.backbones): dev 3.5, schnell 0.
BACKBONE_GUIDANCE = {b.name: b.guidance for b in BACKBONE_REGISTRY}

# EAGER (idrift.accel.plan): RunSpec.acceleration of the reference path; left out of the key (RunSpec.key).
# MEMORY_MODES: --idrift-memory (memory.fit_memory, 8-bit weights or not).

ACCELERATE_MODES = ("eager", "lossless", "lossy")  # --idrift-accelerate: eager, or fast.accelerate's mode


def step_cache_threshold(text: str | float | None) -> float | None:
    """--idrift-step-cache THRESHOLD -> float; None or "" (env unset) -> None (no step cache).
    A bad value raises argparse.ArgumentTypeError (a ValueError), so that it works as an argparse `type`."""
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(text, bool) or not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"the First-Block-Cache threshold must be a number >= 0 such as 0.12 (ParaAttention uses ~0.08-0.12 "
            f"on FLUX; 0 never skips; leave the option out for no step cache), got {text!r}")
    return value


@dataclass(frozen=True)
class RunSpec:
    """One sample: everything that determines the generated image.

    `mode="budget"` is a separate run of `steps` steps (the paper's meaning of a step budget).
    `mode="trajectory"` is the x0 prediction read off a `trajectory_of`-step run after `steps` steps.
    """

    backbone: str
    steps: int
    guidance: float
    alpha: float
    prompt_id: str
    prompt: str
    identity: str
    seed: int
    width: int
    height: int
    dtype: str
    profile: str
    weights: str = ""  # fingerprint of the model bundle (see idrift.models.fingerprint)
    infuse_start: float = 0.0
    infuse_end: float = 1.0
    control: str = "black"  # InfuseNet control image: "black" (InfiniteYou's default) or "keypoints"
    mode: str = "budget"
    trajectory_of: int = 0  # total steps of the trajectory when mode == "trajectory"
    acceleration: str = EAGER  # numerical path: an idrift.accel.plan.AccelerationPlan's label
    loras: str = ""  # LoRAs on the backbone: idrift.models.lora.lora_label ("fingerprint*scale+..."), "" for none
    method: str = ""  # "": idrift's pipeline made it; else the scored method's label (idrift score)

    def __post_init__(self) -> None:
        scored = bool(self.method)  # an image of another method: its unknown fields are "" or 0
        if self.backbone not in BACKBONES and not (scored and self.backbone == ""):
            raise ValueError(f"RunSpec.backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"RunSpec.profile must be one of {PROFILES}, got {self.profile!r}")
        if self.steps < (0 if scored else 1):
            raise ValueError(f"RunSpec.steps must be >= 1, got {self.steps}")
        if self.control not in ("black", "keypoints"):
            raise ValueError(f"RunSpec.control must be 'black' or 'keypoints', got {self.control!r}")
        if self.mode not in ("budget", "trajectory"):
            raise ValueError(f"RunSpec.mode must be 'budget' or 'trajectory', got {self.mode!r}")
        if self.mode == "trajectory" and not (1 <= self.steps <= self.trajectory_of):
            raise ValueError(
                f"trajectory sample at step {self.steps} needs 1 <= steps <= trajectory_of ({self.trajectory_of})"
            )
        if not 0.0 <= self.infuse_start <= self.infuse_end <= 1.0:
            raise ValueError(
                f"InfuseNet window must satisfy 0 <= start <= end <= 1, got [{self.infuse_start}, {self.infuse_end}]"
            )
        try:
            AccelerationPlan.from_label(self.acceleration)
        except ValueError as exc:
            raise ValueError(f"RunSpec.acceleration: {exc}") from None
        if self.width % 16 or self.height % 16:
            raise ValueError("width and height must be multiples of 16 (FLUX packs 2x2 latents), "
                             f"got {self.width}x{self.height}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def key(self) -> str:
        """Stable content hash: names the PNG and the store row.

        Compatibility rule: a field added after stores were written is left out of the hash while it
        has its default value, so every key written before it was added stays the same. Such fields:
        `acceleration` (default "eager": the images every earlier store holds), `loras` (default ""),
        `method` (default "").
        """
        fields = self.as_dict()
        if fields["acceleration"] == EAGER:
            del fields["acceleration"]
        if not fields["loras"]:
            del fields["loras"]
        if not fields["method"]:
            del fields["method"]
        blob = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    @property
    def config_label(self) -> str:
        """The configuration part of a paired key: what differs between the arms of a claim."""
        label = f"{self.backbone}-{self.steps}-g{self.guidance:g}-a{self.alpha:g}"
        if self.mode == "trajectory":
            label += f"-traj{self.trajectory_of}"
        return label

    @property
    def sample_label(self) -> str:
        """The (identity, prompt, seed) part of a paired key: what pairs samples across runs."""
        return f"{self.identity}|{self.prompt_id}|{self.seed}"

    def replace(self, **changes) -> "RunSpec":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class GenerationResult:
    """What the pipeline returns for one spec: the image and how long each stage took."""

    image: "object"  # PIL.Image.Image
    stage_seconds: dict[str, float] = field(default_factory=dict)
    trajectory: dict[int, "object"] = field(default_factory=dict)  # step -> PIL image of the x0 prediction
