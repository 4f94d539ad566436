"""Run specifications and profiles.

A `RunSpec` is one generated sample, as a frozen value. Its `key` (a hash of every field) names the
sample's image and its row in the results store, so a rerun finds finished work and a changed field
never reuses a stale image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

PROFILES: tuple[str, ...] = ("tiny", "synthetic", "real")
BACKBONES: tuple[str, ...] = ("dev", "schnell")


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

# The two configurations the paper compares. Only the backbone and the guidance differ.
BACKBONE_GUIDANCE = {"dev": 3.5, "schnell": 0.0}


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

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"RunSpec.backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"RunSpec.profile must be one of {PROFILES}, got {self.profile!r}")
        if self.steps < 1:
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
        if self.width % 16 or self.height % 16:
            raise ValueError(f"width and height must be multiples of 16 (FLUX packs 2x2 latents), got {self.width}x{self.height}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def key(self) -> str:
        """Stable content hash: names the PNG and the store row."""
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
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
