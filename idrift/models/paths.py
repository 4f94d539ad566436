"""Where the `real` profile finds its weights: the options, their precedence and the default locations.

idrift never downloads a weight. Each component is a local folder or file, or - for the three
Hugging Face repositories - a hub id that is looked up OFFLINE in the Hugging Face cache
(`idrift.models.hf_cache`: `huggingface_hub.snapshot_download(repo_id, local_files_only=True)`; the cache
is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`). Fill the cache once with
`hf download black-forest-labs/FLUX.1-dev` (FLUX.1-dev is gated: accept its licence first).

Precedence, per component: pytest option / `idrift weights check` flag > environment variable > default.
An empty value counts as unset. Per component: the pytest option, the `idrift weights check` flag,
the environment variable, and the default:

- each FLUX backbone (diffusers folder), from its entry in `idrift.models.backbones`:
  - FLUX.1-dev: `--idrift-flux-dev`, `--flux-dev`, `IDRIFT_FLUX_DEV`; default `black-forest-labs/FLUX.1-dev` (HF cache)
  - FLUX.1-schnell: `--idrift-flux-schnell`, `--flux-schnell`, `IDRIFT_FLUX_SCHNELL`;
    default `black-forest-labs/FLUX.1-schnell` (HF cache)
- InfiniteYou root: `--idrift-infiniteyou`, `--infiniteyou`, `IDRIFT_INFINITEYOU`;
  default `ByteDance/InfiniteYou` (HF cache)
- InfiniteYou variant: `--idrift-infu-variant`, `--infu-variant`, `IDRIFT_INFU_VARIANT`;
  default `aes_stage2` (or `sim_stage1`)
- insightface antelopev2 folder: `--idrift-antelopev2`, `--antelopev2`, `IDRIFT_ANTELOPEV2`;
  default `<InfiniteYou>/supports/insightface/models/antelopev2`,
  else insightface's own root (`$INSIGHTFACE_HOME` or `~/.insightface`)`/models/antelopev2`
- ArcFace IR-SE50 (`recognition_arcface_ir_se50.pth`): `--idrift-arcface-ir-se50`, `--arcface-ir-se50`,
  `IDRIFT_ARCFACE_IR_SE50`; default facexlib's `facexlib/weights/` (when facexlib is installed),
  else `<torch hub>/checkpoints/`
- VGG16 for LPIPS (`vgg16-397923af.pth`): `--idrift-vgg16`, `--vgg16`, `IDRIFT_VGG16`;
  default `<torch hub>/checkpoints/vgg16-397923af.pth` (`torch.hub.get_dir()`)
- CLIP for CLIP-T (transformers folder): `--idrift-clip`, `--clip`, `IDRIFT_CLIP`;
  default `openai/clip-vit-large-patch14` (HF cache); layout: idrift.models.clip

Expected layouts:

- FLUX folder: `model_index.json`, `transformer/`, `scheduler/` and - in the folder that provides the
  components the two backbones share (FLUX.1-dev; FLUX.1-schnell when dev is not used) - `vae/`,
  `text_encoder/`, `text_encoder_2/`, `tokenizer/`, `tokenizer_2/`. Model sub-folders hold
  `config.json` and safetensors weights, single-file or sharded with a `*.safetensors.index.json`.
- InfiniteYou root: `infu_flux_v1.0/<variant>/InfuseNetModel/` (a diffusers FluxControlNetModel
  folder), `infu_flux_v1.0/<variant>/image_proj_model.bin` and `supports/insightface/models/antelopev2/`.
- antelopev2: `scrfd_10g_bnkps.onnx`, `glintr100.onnx`, `genderage.onnx` (the folder itself, or an
  insightface root holding `models/antelopev2/`).

`check_weights` (in `idrift.models.weights_check`) validates all of that from file names, JSON configs
and safetensors headers only (seconds, even for 30 GB folders) and says, in one line per problem, what
is wrong and which option or variable to set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

from idrift.errors import WeightsError
from idrift.models.backbones import REGISTRY as BACKBONES
from idrift.models.hf_cache import looks_like_hub_id, resolve_hub_id

DEFAULT_INFINITEYOU = "ByteDance/InfiniteYou"
INFU_VARIANTS = ("aes_stage2", "sim_stage1")
INFU_VERSION_DIR = "infu_flux_v1.0"
ANTELOPEV2_IN_INFINITEYOU = Path("supports", "insightface", "models", "antelopev2")
INSIGHTFACE_HOME_ENV = "INSIGHTFACE_HOME"  # insightface's own model root (default ~/.insightface)
ARCFACE_FILE = "recognition_arcface_ir_se50.pth"
VGG16_FILE = "vgg16-397923af.pth"
IMAGE_PROJ_FILE = "image_proj_model.bin"
IMAGE_PROJ_CONFIG_FILE = "image_proj_config.json"
DEFAULT_CLIP = "openai/clip-vit-large-patch14"  # idrift.models.clip.DEFAULT_CLIP


@dataclass(frozen=True)
class WeightOption:
    """How one WeightPaths field is set: the option names, the environment variable, the default."""

    field: str
    env: str
    default: str | None
    help: str

    @property
    def option(self) -> str:  # pytest
        return "--idrift-" + self.field.replace("_", "-")

    @property
    def cli_option(self) -> str:  # `idrift weights check`
        return "--" + self.field.replace("_", "-")

    def named(self, option_prefix: str = "--idrift-") -> str:
        return option_prefix + self.field.replace("_", "-")


# One option per backbone (its registry entry names it), then the components every backbone uses.
WEIGHT_OPTIONS: tuple[WeightOption, ...] = (
    *(WeightOption(b.component, b.env, b.hub_id, b.weights_help) for b in BACKBONES),
    WeightOption("infiniteyou", "IDRIFT_INFINITEYOU", DEFAULT_INFINITEYOU,
                 "the InfiniteYou root (holds infu_flux_v1.0/ and supports/), "
                 "or a hub id found in the Hugging Face cache"),
    WeightOption("infu_variant", "IDRIFT_INFU_VARIANT", "aes_stage2",
                 "the InfiniteYou model variant: aes_stage2 or sim_stage1"),
    WeightOption("antelopev2", "IDRIFT_ANTELOPEV2", None,
                 "insightface's antelopev2 folder (default: the one inside the InfiniteYou root)"),
    WeightOption("arcface_ir_se50", "IDRIFT_ARCFACE_IR_SE50", None,
                 f"the file {ARCFACE_FILE} "
                 "(default: facexlib's weights folder, else the torch hub checkpoints folder)"),
    WeightOption("vgg16", "IDRIFT_VGG16", None,
                 f"torchvision's {VGG16_FILE} for LPIPS (default: the torch hub checkpoints folder)"),
    WeightOption("clip", "IDRIFT_CLIP", DEFAULT_CLIP,
                 "CLIP for CLIP-T: a transformers CLIPModel folder, or a hub id found in the Hugging Face cache"),
)
OPTIONS_BY_FIELD = {o.field: o for o in WEIGHT_OPTIONS}


# --------------------------------------------------------------------------------------------------
# Default locations, read from the environment at call time (never at import time), so that tests and
# users can point TORCH_HOME / INSIGHTFACE_HOME elsewhere after idrift is imported.


def torch_hub_dir() -> Path:
    """`torch.hub.get_dir()` without importing torch (it is used when torch is already imported)."""
    if "torch" in sys.modules:
        return Path(sys.modules["torch"].hub.get_dir())
    home = os.getenv("TORCH_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "torch")
    return Path(home, "hub").expanduser()


def arcface_candidates() -> list[Path]:
    """Where ArcFace IR-SE50 is looked for, in order: facexlib's weights folder (when facexlib is installed),
    then the torch hub checkpoints folder."""
    import importlib.util

    out = []
    spec = importlib.util.find_spec("facexlib")  # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        out.append(Path(list(spec.submodule_search_locations)[0]) / "weights" / ARCFACE_FILE)
    out.append(torch_hub_dir() / "checkpoints" / ARCFACE_FILE)
    return out


def insightface_antelopev2_candidates() -> list[Path]:
    """antelopev2 inside insightface's own model root, where `FaceAnalysis(name="antelopev2")` keeps it:
    $INSIGHTFACE_HOME/models/antelopev2 when that is set, then ~/.insightface/models/antelopev2."""
    roots = [Path(os.environ[INSIGHTFACE_HOME_ENV]).expanduser()] if os.environ.get(INSIGHTFACE_HOME_ENV) else []
    roots.append(Path("~/.insightface").expanduser())
    return [root / "models" / "antelopev2" for root in roots]


# --------------------------------------------------------------------------------------------------


class _WeightPathsMethods:
    """Where each real-profile component lives, as given (a local path or a hub id), after precedence.

    One field per `WEIGHT_OPTIONS` entry (`flux_dev`, `flux_schnell`, ..., `clip`), then `origins`.
    None for antelopev2, arcface_ir_se50 and vgg16 means "the default location" (see the module
    docstring). `origins` records, per field, "option", "env" or "default" - for messages only.
    Use `location(field)` for the resolved local path.
    """

    def __post_init__(self) -> None:
        for opt in WEIGHT_OPTIONS:
            if opt.field == "infu_variant":  # a setting, not a location
                continue
            value = getattr(self, opt.field)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, opt.field, os.fspath(value))
            elif value == "":
                object.__setattr__(self, opt.field, None)

    def origin(self, name: str) -> str:
        return dict(self.origins).get(name, "given")

    def located(self, name: str) -> tuple[Path, str]:
        """(local path, how to show it). Raises WeightsError for an uncached hub id."""
        value = getattr(self, name)
        if name == "antelopev2" and value is None:
            # The copy inside the InfiniteYou root, else insightface's own model root (the first that exists).
            candidates = []
            try:
                root, shown = self.located("infiniteyou")
                candidates.append((root / ANTELOPEV2_IN_INFINITEYOU, f"{shown}/{ANTELOPEV2_IN_INFINITEYOU.as_posix()}"))
            except WeightsError:
                if not any(c.is_dir() for c in insightface_antelopev2_candidates()):
                    raise
            candidates += [(c, str(c)) for c in insightface_antelopev2_candidates()]
            return next((c for c in candidates if c[0].is_dir()), candidates[0])
        if name == "arcface_ir_se50" and value is None:
            candidates = arcface_candidates()
            found = next((c for c in candidates if c.exists()), candidates[0])
            return found, str(found)
        if name == "vgg16" and value is None:
            path = torch_hub_dir() / "checkpoints" / VGG16_FILE
            return path, str(path)
        if value is None:
            raise WeightsError(f"{name} is not set")
        if looks_like_hub_id(value):
            snapshot = resolve_hub_id(value)
            return snapshot, f"{value} (HF cache: {snapshot})"
        path = Path(value).expanduser()
        return path, str(path)

    def location(self, name: str) -> Path:
        """The local path of a component (hub ids resolved offline). Raises WeightsError."""
        return self.located(name)[0]

    def variant_dir(self) -> Path:
        return self.location("infiniteyou") / INFU_VERSION_DIR / self.infu_variant


# One field per WEIGHT_OPTIONS entry, in its order and with its default (so a backbone's registry entry in
# idrift.models.backbones brings its field: flux_dev, flux_schnell, ...), then `origins`.
WeightPaths = make_dataclass(
    "WeightPaths",
    [*((opt.field, str | None, field(default=opt.default)) for opt in WEIGHT_OPTIONS),
     ("origins", tuple[tuple[str, str], ...], field(default=(), compare=False))],
    bases=(_WeightPathsMethods,),
    frozen=True,
    namespace={"__module__": __name__, "__doc__": _WeightPathsMethods.__doc__},
)


def _normalise_options(options: Mapping[str, Any] | Any | None) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):  # argparse.Namespace, pytest's option namespace
        options = vars(options)
    out = {}
    for key, value in options.items():
        norm = str(key).lstrip("-").replace("-", "_")
        if norm.startswith("idrift_"):
            norm = norm[len("idrift_"):]
        if norm in OPTIONS_BY_FIELD:
            out[norm] = value
    return out


def resolve_weight_paths(
    options: Mapping[str, Any] | Any | None = None, env: Mapping[str, str] | None = None
) -> WeightPaths:
    """WeightPaths from options (pytest option / CLI flag) > environment variables > defaults.

    `options` maps field names, option names (`--idrift-flux-dev`, `--flux-dev`) or dests
    (`idrift_flux_dev`) to values; None or "" means unset. Also accepts an argparse.Namespace.
    `env` defaults to `os.environ`. Nothing is resolved or checked here (see `check_weights`).
    """
    env = os.environ if env is None else env
    given = _normalise_options(options)
    values: dict[str, Any] = {}
    origins = []
    for opt in WEIGHT_OPTIONS:
        value = given.get(opt.field)
        if value is not None and str(value) != "":
            values[opt.field], where = os.fspath(value) if not isinstance(value, str) else value, "option"
        elif env.get(opt.env):
            values[opt.field], where = env[opt.env], "env"
        else:
            values[opt.field], where = opt.default, "default"
        origins.append((opt.field, where))
    if values["infu_variant"] is None:
        values["infu_variant"] = "aes_stage2"
    return WeightPaths(**values, origins=tuple(origins))


def add_pytest_options(group: Any) -> None:
    """Add the `--idrift-*` weight options to a pytest option group (for the pytest plugin)."""
    for opt in WEIGHT_OPTIONS:
        group.addoption(opt.option, action="store", default=None, help=f"{opt.help} [env {opt.env}]")


def options_from_pytest(config: Any) -> dict[str, Any]:
    """The `--idrift-*` weight option values of a pytest config, for `resolve_weight_paths`."""
    return {opt.field: config.getoption(opt.option, default=None) for opt in WEIGHT_OPTIONS}
