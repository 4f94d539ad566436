"""The FLUX backbones idrift knows, as data: one `Backbone` entry per backbone in `REGISTRY`.

Adding a backbone is adding its entry here (and the claims whose arms use it, `idrift.claims`).
Everything else derives from the entries:

- `idrift.config`: `BACKBONES` (the names a `RunSpec` accepts) and `BACKBONE_GUIDANCE`;
- the random-weights profiles (`idrift.models.tiny`, `idrift.models.synthetic`): each backbone's transformer
  config (with or without a guidance embedding), seed, fingerprint and scheduler config;
- the real profile: where its weights are found (`idrift.models.paths.WEIGHT_OPTIONS` and the `WeightPaths`
  field, named by `component`), how their layout is checked (`idrift.models.weights_check.COMPONENTS`,
  `idrift.models.component_checks.check_flux`), how they load (`idrift.models.real`) and the tiny weights
  written in their layout (`idrift.models.layout`).

The order of `REGISTRY` is the order of every listing (options, `idrift weights check`'s rows), and the
first backbone a real bundle uses provides the components FLUX backbones share (text encoders,
tokenizers, VAE): `shared_components_from`.

Torch-free: `idrift.config` imports it, and planning a run (`idrift.runner`) must not load torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# FlowMatchEulerDiscreteScheduler configs of the random-weights profiles (tiny, synthetic): dev shifts its
# schedule by resolution, schnell does not. The real profile reads each folder's scheduler_config.json.
FLOW_MATCH_DEV = {"num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True,
                  "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096}
FLOW_MATCH_SCHNELL = {"num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False,
                      "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096}


@dataclass(frozen=True)
class Backbone:
    """One FLUX backbone: what every profile, the weight options and the layout check need to know of it."""

    name: str  # RunSpec.backbone and Arm.backbone ("dev"); part of arm names ("dev-28")
    title: str  # "FLUX.1-dev": messages, the folder name of the tiny weights in the real layout
    guidance: float  # the guidance scale of an arm that names none (config.BACKBONE_GUIDANCE)
    guidance_embeds: bool  # has a guidance embedding: the random weights' config; the layout check expects it
    scheduler: Mapping[str, object]  # the random-weights profiles' scheduler config
    seed_offset: int  # the random weights are seeded with the profile's seed + this
    hub_id: str  # default location of the real weights: a Hugging Face repo, found in the offline cache

    @property
    def component(self) -> str:
        """"flux_dev": its weights component, fingerprint key, `WeightPaths` field and option
        (`--idrift-flux-dev`, `--flux-dev`)."""
        return f"flux_{self.name}"

    @property
    def env(self) -> str:
        """The environment variable of its weights: "IDRIFT_FLUX_DEV"."""
        return "IDRIFT_" + self.component.upper()

    @property
    def weights_help(self) -> str:
        """The help text of its weight option."""
        return f"{self.title}: a diffusers folder, or a hub id found in the Hugging Face cache"

    def transformer_config(self, base: Mapping[str, object]) -> dict:
        """A random-weights profile's FluxTransformer2DModel config for this backbone: `base` plus its
        guidance embedding (what it is built with and what its fingerprint records)."""
        return dict(base, guidance_embeds=self.guidance_embeds)


# The two backbones the paper compares. Only the backbone and the guidance differ.
REGISTRY: tuple[Backbone, ...] = (
    Backbone("dev", "FLUX.1-dev", guidance=3.5, guidance_embeds=True, scheduler=FLOW_MATCH_DEV, seed_offset=11,
             hub_id="black-forest-labs/FLUX.1-dev"),
    Backbone("schnell", "FLUX.1-schnell", guidance=0.0, guidance_embeds=False, scheduler=FLOW_MATCH_SCHNELL,
             seed_offset=17, hub_id="black-forest-labs/FLUX.1-schnell"),
)
BY_NAME: dict[str, Backbone] = {b.name: b for b in REGISTRY}
BY_COMPONENT: dict[str, Backbone] = {b.component: b for b in REGISTRY}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def shared_components_from(names: Iterable[str]) -> str:
    """Which of `names` provides the text encoders, tokenizers and VAE: the first in `REGISTRY` order
    (FLUX.1-dev, else FLUX.1-schnell: it ships the same ones)."""
    names = set(names)
    return next(b.name for b in REGISTRY if b.name in names)
