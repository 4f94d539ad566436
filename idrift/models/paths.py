"""Where the `real` profile finds its weights, and a layout check that loads no tensor.

idrift never downloads a weight. Each component is a local folder or file, or - for the three
Hugging Face repositories - a hub id that is looked up OFFLINE in the Hugging Face cache
(`huggingface_hub.snapshot_download(repo_id, local_files_only=True)`; the cache is `$HF_HUB_CACHE`,
else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`). Fill the cache once with
`hf download black-forest-labs/FLUX.1-dev` (FLUX.1-dev is gated: accept its licence first).

Precedence, per component: pytest option / `idrift weights check` flag > environment variable > default.
An empty value counts as unset.

| component | pytest option | `idrift weights check` | environment variable | default |
|---|---|---|---|---|
| FLUX.1-dev (diffusers folder) | `--idrift-flux-dev` | `--flux-dev` | `IDRIFT_FLUX_DEV` | `black-forest-labs/FLUX.1-dev` (HF cache) |
| FLUX.1-schnell (diffusers folder) | `--idrift-flux-schnell` | `--flux-schnell` | `IDRIFT_FLUX_SCHNELL` | `black-forest-labs/FLUX.1-schnell` (HF cache) |
| InfiniteYou root | `--idrift-infiniteyou` | `--infiniteyou` | `IDRIFT_INFINITEYOU` | `ByteDance/InfiniteYou` (HF cache) |
| InfiniteYou variant | `--idrift-infu-variant` | `--infu-variant` | `IDRIFT_INFU_VARIANT` | `aes_stage2` (or `sim_stage1`) |
| insightface antelopev2 folder | `--idrift-antelopev2` | `--antelopev2` | `IDRIFT_ANTELOPEV2` | `<InfiniteYou>/supports/insightface/models/antelopev2`, else insightface's own root (`$INSIGHTFACE_HOME` or `~/.insightface`)`/models/antelopev2` |
| ArcFace IR-SE50 (`recognition_arcface_ir_se50.pth`) | `--idrift-arcface-ir-se50` | `--arcface-ir-se50` | `IDRIFT_ARCFACE_IR_SE50` | facexlib's `facexlib/weights/` (when facexlib is installed), else `<torch hub>/checkpoints/` |
| VGG16 for LPIPS (`vgg16-397923af.pth`) | `--idrift-vgg16` | `--vgg16` | `IDRIFT_VGG16` | `<torch hub>/checkpoints/vgg16-397923af.pth` (`torch.hub.get_dir()`) |
| CLIP for CLIP-T (transformers folder) | `--idrift-clip` | `--clip` | `IDRIFT_CLIP` | `openai/clip-vit-large-patch14` (HF cache); layout: idrift.models.clip |

Expected layouts:

- FLUX folder: `model_index.json`, `transformer/`, `scheduler/` and - in the folder that provides the
  components the two backbones share (FLUX.1-dev; FLUX.1-schnell when dev is not used) - `vae/`,
  `text_encoder/`, `text_encoder_2/`, `tokenizer/`, `tokenizer_2/`. Model sub-folders hold
  `config.json` and safetensors weights, single-file or sharded with a `*.safetensors.index.json`.
- InfiniteYou root: `infu_flux_v1.0/<variant>/InfuseNetModel/` (a diffusers FluxControlNetModel
  folder), `infu_flux_v1.0/<variant>/image_proj_model.bin` and `supports/insightface/models/antelopev2/`.
- antelopev2: `scrfd_10g_bnkps.onnx`, `glintr100.onnx`, `genderage.onnx` (the folder itself, or an
  insightface root holding `models/antelopev2/`).

`check_weights` validates all of that from file names, JSON configs and safetensors headers only
(seconds, even for 30 GB folders) and says, in one line per problem, what is wrong and which
option or variable to set.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idrift.errors import WeightsError
from idrift.models.fingerprint import (
    LFS_POINTER_PREFIX,
    fingerprint_file,
    fingerprint_folder,
    is_lfs_pointer,
    read_safetensors_header,
)

DEFAULT_FLUX_DEV = "black-forest-labs/FLUX.1-dev"
DEFAULT_FLUX_SCHNELL = "black-forest-labs/FLUX.1-schnell"
DEFAULT_INFINITEYOU = "ByteDance/InfiniteYou"
INFU_VARIANTS = ("aes_stage2", "sim_stage1")
INFU_VERSION_DIR = "infu_flux_v1.0"
ANTELOPEV2_IN_INFINITEYOU = Path("supports", "insightface", "models", "antelopev2")
INSIGHTFACE_HOME_ENV = "INSIGHTFACE_HOME"  # insightface's own model root (default ~/.insightface)


def insightface_antelopev2_candidates() -> list[Path]:
    """antelopev2 inside insightface's own model root, where `FaceAnalysis(name="antelopev2")` keeps it:
    $INSIGHTFACE_HOME/models/antelopev2 when that is set, then ~/.insightface/models/antelopev2."""
    roots = [Path(os.environ[INSIGHTFACE_HOME_ENV]).expanduser()] if os.environ.get(INSIGHTFACE_HOME_ENV) else []
    roots.append(Path("~/.insightface").expanduser())
    return [root / "models" / "antelopev2" for root in roots]
# The antelopev2 files idrift's ArcFace backend uses (idrift.faces.arcface.REQUIRED_FILES).
ANTELOPEV2_REQUIRED = ("scrfd_10g_bnkps.onnx", "glintr100.onnx", "genderage.onnx")
ARCFACE_FILE = "recognition_arcface_ir_se50.pth"
VGG16_FILE = "vgg16-397923af.pth"
IMAGE_PROJ_FILE = "image_proj_model.bin"
IMAGE_PROJ_CONFIG_FILE = "image_proj_config.json"

FLUX_BACKBONE_SUBFOLDERS = ("transformer", "scheduler")
FLUX_SHARED_SUBFOLDERS = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")
# Components check_weights knows, in report order (infu_variant is a setting of `infiniteyou`).
COMPONENTS = ("flux_dev", "flux_schnell", "infiniteyou", "antelopev2", "arcface_ir_se50", "vgg16", "clip")
DEFAULT_CLIP = "openai/clip-vit-large-patch14"  # idrift.models.clip.DEFAULT_CLIP
CLIP_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")
CLIP_PREPROCESSOR_FILE = "preprocessor_config.json"


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


WEIGHT_OPTIONS: tuple[WeightOption, ...] = (
    WeightOption("flux_dev", "IDRIFT_FLUX_DEV", DEFAULT_FLUX_DEV,
                 "FLUX.1-dev: a diffusers folder, or a hub id found in the Hugging Face cache"),
    WeightOption("flux_schnell", "IDRIFT_FLUX_SCHNELL", DEFAULT_FLUX_SCHNELL,
                 "FLUX.1-schnell: a diffusers folder, or a hub id found in the Hugging Face cache"),
    WeightOption("infiniteyou", "IDRIFT_INFINITEYOU", DEFAULT_INFINITEYOU,
                 "the InfiniteYou root (holds infu_flux_v1.0/ and supports/), or a hub id found in the Hugging Face cache"),
    WeightOption("infu_variant", "IDRIFT_INFU_VARIANT", "aes_stage2",
                 "the InfiniteYou model variant: aes_stage2 or sim_stage1"),
    WeightOption("antelopev2", "IDRIFT_ANTELOPEV2", None,
                 "insightface's antelopev2 folder (default: the one inside the InfiniteYou root)"),
    WeightOption("arcface_ir_se50", "IDRIFT_ARCFACE_IR_SE50", None,
                 f"the file {ARCFACE_FILE} (default: facexlib's weights folder, else the torch hub checkpoints folder)"),
    WeightOption("vgg16", "IDRIFT_VGG16", None,
                 f"torchvision's {VGG16_FILE} for LPIPS (default: the torch hub checkpoints folder)"),
    WeightOption("clip", "IDRIFT_CLIP", DEFAULT_CLIP,
                 "CLIP for CLIP-T: a transformers CLIPModel folder, or a hub id found in the Hugging Face cache"),
)
OPTIONS_BY_FIELD = {o.field: o for o in WEIGHT_OPTIONS}


# --------------------------------------------------------------------------------------------------
# Default locations, read from the environment at call time (never at import time), so that tests and
# users can point HF_HOME / TORCH_HOME elsewhere after idrift is imported.


def hf_hub_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The Hugging Face hub cache huggingface_hub would use: HF_HUB_CACHE > HF_HOME/hub > ~/.cache/huggingface/hub."""
    env = os.environ if env is None else env
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HUGGINGFACE_HUB_CACHE"):  # older name
        return Path(env["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(home, "hub").expanduser()


def torch_hub_dir() -> Path:
    """`torch.hub.get_dir()` without importing torch (it is used when torch is already imported)."""
    if "torch" in sys.modules:
        return Path(sys.modules["torch"].hub.get_dir())
    home = os.getenv("TORCH_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "torch")
    return Path(home, "hub").expanduser()


def _arcface_candidates() -> list[Path]:
    import importlib.util

    out = []
    spec = importlib.util.find_spec("facexlib")  # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        out.append(Path(list(spec.submodule_search_locations)[0]) / "weights" / ARCFACE_FILE)
    out.append(torch_hub_dir() / "checkpoints" / ARCFACE_FILE)
    return out


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def looks_like_hub_id(value: str) -> bool:
    """`owner/name` that is not an existing local path."""
    return bool(_HUB_ID.match(value)) and not Path(value).expanduser().exists()


def resolve_hub_id(repo_id: str, env: Mapping[str, str] | None = None) -> Path:
    """The cached snapshot folder of `repo_id`, offline. Raises WeightsError when it is not cached."""
    cache = hf_hub_cache_dir(env)
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:
        raise WeightsError(f"{repo_id} is not a local folder, and huggingface_hub (needed to read the cache) is not installed") from exc
    try:
        # local_files_only: a cache lookup, never a network call (HF_HUB_OFFLINE semantics).
        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=str(cache)))
    except Exception as exc:  # no snapshot, an incomplete snapshot, a broken cache
        if isinstance(exc, LocalEntryNotFoundError):
            reason = "no cached snapshot"
        else:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"{repo_id} is neither a local folder nor a repository in the Hugging Face cache {cache} ({reason}); "
            f"idrift never downloads: fill the cache once with `hf download {repo_id}`, or use a local folder"
        ) from exc


# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightPaths:
    """Where each real-profile component lives, as given (a local path or a hub id), after precedence.

    None for antelopev2, arcface_ir_se50 and vgg16 means "the default location" (see the module
    docstring). `origins` records, per field, "option", "env" or "default" - for messages only.
    Use `location(field)` for the resolved local path.
    """

    flux_dev: str | None = DEFAULT_FLUX_DEV
    flux_schnell: str | None = DEFAULT_FLUX_SCHNELL
    infiniteyou: str | None = DEFAULT_INFINITEYOU
    infu_variant: str = "aes_stage2"
    antelopev2: str | None = None
    arcface_ir_se50: str | None = None
    vgg16: str | None = None
    clip: str | None = DEFAULT_CLIP
    origins: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name in ("flux_dev", "flux_schnell", "infiniteyou", "antelopev2", "arcface_ir_se50", "vgg16", "clip"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, name, os.fspath(value))
            elif value == "":
                object.__setattr__(self, name, None)

    def origin(self, name: str) -> str:
        return dict(self.origins).get(name, "given")

    def _located(self, name: str) -> tuple[Path, str]:
        """(local path, how to show it). Raises WeightsError for an uncached hub id."""
        value = getattr(self, name)
        if name == "antelopev2" and value is None:
            # The copy inside the InfiniteYou root, else insightface's own model root (the first that exists).
            candidates = []
            try:
                root, shown = self._located("infiniteyou")
                candidates.append((root / ANTELOPEV2_IN_INFINITEYOU, f"{shown}/{ANTELOPEV2_IN_INFINITEYOU.as_posix()}"))
            except WeightsError:
                if not any(c.is_dir() for c in insightface_antelopev2_candidates()):
                    raise
            candidates += [(c, str(c)) for c in insightface_antelopev2_candidates()]
            return next((c for c in candidates if c[0].is_dir()), candidates[0])
        if name == "arcface_ir_se50" and value is None:
            candidates = _arcface_candidates()
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
        return self._located(name)[0]

    def variant_dir(self) -> Path:
        return self.location("infiniteyou") / INFU_VERSION_DIR / self.infu_variant


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


def resolve_weight_paths(options: Mapping[str, Any] | Any | None = None, env: Mapping[str, str] | None = None) -> WeightPaths:
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


# --------------------------------------------------------------------------------------------------
# The layout check


@dataclass(frozen=True)
class WeightStatus:
    """The check of one component. `problems` holds one self-contained line per problem."""

    component: str
    path: str
    found: bool
    problems: tuple[str, ...]
    fingerprint: str | None
    option: str
    env: str

    @property
    def problem(self) -> str | None:
        return "\n".join(self.problems) if self.problems else None


def _read_json(path: Path) -> tuple[Any, str | None]:
    try:
        with open(path, "rb") as f:
            head = f.read(len(LFS_POINTER_PREFIX))
        if head == LFS_POINTER_PREFIX:
            return None, f"{path.name} is a Git LFS pointer, not the file: run `git lfs pull`"
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"malformed {path.name} ({str(exc).splitlines()[0]})"


def _read_json_dict(path: Path) -> tuple[dict | None, str | None]:
    data, problem = _read_json(path)
    if problem is None and not isinstance(data, dict):
        return None, f"malformed {path.name} (not a JSON object)"
    return data, problem


def _torch_file_problem(path: Path) -> str | None:
    """A cheap 'is this a torch.save file' test: zip (PK) or legacy pickle (0x80) magic."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(len(LFS_POINTER_PREFIX))
    except OSError as exc:
        return f"cannot read {path.name} ({exc})"
    if size == 0:
        return f"{path.name} is empty"
    if head == LFS_POINTER_PREFIX:
        return f"{path.name} is a Git LFS pointer, not the weights: run `git lfs pull`"
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        return f"{path.name} is not a PyTorch checkpoint (no zip or pickle header); re-copy the file"
    return None


def _weights_problems(folder: Path, stem: str, bin_name: str, shown: str) -> list[str]:
    """Problems with the weights of one model folder: `<stem>.safetensors`, or an index + shards, or a .bin."""
    single = folder / f"{stem}.safetensors"
    index = folder / f"{stem}.safetensors.index.json"
    problems: list[str] = []
    if index.is_file():
        data, problem = _read_json_dict(index)
        if problem:
            return [f"{shown}/{index.name}: {problem}"]
        weight_map = data.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            return [f"{shown}/{index.name}: malformed shard index (no weight_map)"]
        shards: dict[str, list[str]] = {}
        for tensor, shard in weight_map.items():
            shards.setdefault(str(shard), []).append(tensor)
        missing = sorted(s for s in shards if not (folder / s).is_file())
        if missing:
            problems.append(f"{shown}: missing {len(missing)} of the {len(shards)} shards listed in {index.name} "
                            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); the copy is incomplete")
        for shard, tensors in sorted(shards.items()):
            if shard in missing:
                continue
            try:
                header = read_safetensors_header(folder / shard)
            except WeightsError as exc:
                problems.append(str(exc))
                continue
            absent = [t for t in tensors if t not in header]
            if absent:
                problems.append(f"{shown}/{shard} lacks {len(absent)} tensors that {index.name} places there "
                                f"(e.g. {absent[0]}): shards from different versions were mixed; re-copy the folder")
        return problems
    if single.is_file():
        try:
            read_safetensors_header(single)
        except WeightsError as exc:
            return [str(exc)]
        return []
    if (folder / bin_name).is_file():
        problem = _torch_file_problem(folder / bin_name)
        return [f"{shown}: {problem}"] if problem else []
    return [f"{shown}: no weights (expected {stem}.safetensors, or {stem}.safetensors.index.json and its shards)"]


def _model_folder_problems(folder: Path, shown: str, kind: str, expect_class: str | None = None) -> list[str]:
    """A model sub-folder: config.json + weights. `kind` is "diffusers" or "transformers"."""
    if not folder.is_dir():
        return [f"{shown}: missing"]
    if not (folder / "config.json").is_file():
        return [f"{shown}: missing config.json"]
    config, problem = _read_json_dict(folder / "config.json")
    if problem:
        return [f"{shown}/config.json: {problem}"]
    problems = []
    if expect_class and config.get("_class_name") not in (None, expect_class):
        problems.append(f"{shown}/config.json describes a {config.get('_class_name')}, expected a {expect_class}")
    stem, bin_name = (("diffusion_pytorch_model", "diffusion_pytorch_model.bin") if kind == "diffusers"
                      else ("model", "pytorch_model.bin"))
    return problems + _weights_problems(folder, stem, bin_name, shown)


def _tokenizer_problems(folder: Path, shown: str) -> list[str]:
    if not folder.is_dir():
        return [f"{shown}: missing"]
    names = {p.name for p in folder.iterdir()}
    if not names & {"tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model"}:
        return [f"{shown}: no tokenizer files (expected tokenizer.json or tokenizer_config.json)"]
    problems = []
    for name in sorted(names & {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json"}):
        _, problem = _read_json(folder / name)
        if problem:
            problems.append(f"{shown}/{name}: {problem}")
    return problems


def _class_of(folder: Path) -> str | None:
    """The `_class_name` of a folder's config.json, if it has a readable one."""
    if not (folder / "config.json").is_file():
        return None
    config, problem = _read_json_dict(folder / "config.json")
    return None if problem else config.get("_class_name")


def _check_flux(root: Path, shown: str, which: str, shared: bool) -> list[str]:
    expected = ("a diffusers FLUX.1-%s folder (model_index.json, transformer/, scheduler/%s)"
                % (which, ", vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/" if shared else ""))
    if not root.exists():
        return [f"{shown}: does not exist; expected {expected}"]
    if not root.is_dir():
        hint = " (single-file checkpoints are not supported)" if root.suffix == ".safetensors" else ""
        return [f"{shown}: is a file, not a folder; expected {expected}{hint}"]
    index_file = root / "model_index.json"
    if not index_file.is_file():
        cls = _class_of(root)
        if cls == "FluxTransformer2DModel" or root.name in FLUX_BACKBONE_SUBFOLDERS + FLUX_SHARED_SUBFOLDERS:
            return [f"{shown}: wrong layout: this is the {root.name}/ sub-folder of a pipeline, expected {expected}; "
                    f"point at its parent {root.parent}"]
        nested = sorted(p for p in root.iterdir() if p.is_dir() and (p / "model_index.json").is_file())
        if nested:
            return [f"{shown}: wrong layout: no model_index.json here but {nested[0]} has one; point there"]
        if any(root.glob("*.safetensors")):
            return [f"{shown}: wrong layout: holds single-file checkpoints but no model_index.json; expected {expected} "
                    f"(the layout of the Hugging Face repo black-forest-labs/FLUX.1-{which})"]
        if not any(root.iterdir()):
            return [f"{shown}: is empty; expected {expected}"]
        return [f"{shown}: missing model_index.json; expected {expected}"]
    problems = []
    model_index, problem = _read_json_dict(index_file)
    if problem:
        problems.append(f"{shown}/model_index.json: {problem}")
    elif "Flux" not in str(model_index.get("_class_name", "Flux")):
        problems.append(f"{shown}/model_index.json describes a {model_index.get('_class_name')}, not a FLUX pipeline")
    subfolders = FLUX_BACKBONE_SUBFOLDERS + (FLUX_SHARED_SUBFOLDERS if shared else ())
    for sub in subfolders:
        folder, sub_shown = root / sub, f"{shown}/{sub}"
        if not folder.is_dir():
            problems.append(f"{shown}: missing sub-folder {sub}/; expected {expected}")
        elif sub == "transformer":
            sub_problems = _model_folder_problems(folder, sub_shown, "diffusers", "FluxTransformer2DModel")
            problems += sub_problems
            if not sub_problems:
                config, _ = _read_json_dict(folder / "config.json")
                guidance = bool(config.get("guidance_embeds", False))
                if which == "dev" and not guidance:
                    problems.append(f"{sub_shown}: has no guidance embedding (guidance_embeds false): "
                                    "this looks like FLUX.1-schnell, not FLUX.1-dev")
                if which == "schnell" and guidance:
                    problems.append(f"{sub_shown}: has a guidance embedding (guidance_embeds true): "
                                    "this looks like FLUX.1-dev, not FLUX.1-schnell")
        elif sub == "vae":
            problems += _model_folder_problems(folder, sub_shown, "diffusers", "AutoencoderKL")
        elif sub in ("text_encoder", "text_encoder_2"):
            problems += _model_folder_problems(folder, sub_shown, "transformers")
        elif sub in ("tokenizer", "tokenizer_2"):
            problems += _tokenizer_problems(folder, sub_shown)
        elif sub == "scheduler":
            if not (folder / "scheduler_config.json").is_file():
                problems.append(f"{sub_shown}: missing scheduler_config.json")
            else:
                _, problem = _read_json_dict(folder / "scheduler_config.json")
                if problem:
                    problems.append(f"{sub_shown}/scheduler_config.json: {problem}")
    return problems


def _check_infiniteyou(root: Path, shown: str, variant: str, variant_names: str) -> list[str]:
    expected = (f"the InfiniteYou root folder (holding {INFU_VERSION_DIR}/{{aes_stage2,sim_stage1}}/InfuseNetModel/, "
                f"{INFU_VERSION_DIR}/<variant>/{IMAGE_PROJ_FILE} and supports/insightface/models/antelopev2/)")
    if variant not in INFU_VARIANTS:
        return [f"{shown}: unknown InfiniteYou variant {variant!r}: use one of {', '.join(INFU_VARIANTS)} "
                f"(set {variant_names})"]
    if not root.exists():
        return [f"{shown}: does not exist; expected {expected}"]
    if not root.is_dir():
        return [f"{shown}: is a file, not a folder; expected {expected}"]
    version_dir = root / INFU_VERSION_DIR
    if not version_dir.is_dir():
        if _class_of(root) == "FluxControlNetModel" or root.name == "InfuseNetModel":
            up = root.parent.parent.parent
            return [f"{shown}: wrong layout: this is an InfuseNetModel folder itself, expected {expected}; "
                    f"point at the root three levels up ({up})"]
        if (root / "InfuseNetModel").is_dir():
            return [f"{shown}: wrong layout: this is the {root.name}/ variant folder, expected {expected}; "
                    f"point at {root.parent.parent} (and choose the variant with {variant_names})"]
        if any((root / v).is_dir() for v in INFU_VARIANTS):
            return [f"{shown}: wrong layout: this is the {root.name}/ folder, expected {expected}; point at its parent {root.parent}"]
        if not any(root.iterdir()):
            return [f"{shown}: is empty; expected {expected}"]
        return [f"{shown}: missing {INFU_VERSION_DIR}/; expected {expected}"]
    variant_dir = version_dir / variant
    if not variant_dir.is_dir():
        have = sorted(p.name for p in version_dir.iterdir() if p.is_dir())
        return [f"{shown}: missing {INFU_VERSION_DIR}/{variant}/ (the variant set by {variant_names}; "
                f"this folder has: {', '.join(have) or 'nothing'})"]
    problems = []
    vshown = f"{shown}/{INFU_VERSION_DIR}/{variant}"
    infusenet = variant_dir / "InfuseNetModel"
    if not infusenet.is_dir():
        problems.append(f"{vshown}/InfuseNetModel/: missing (a diffusers FluxControlNetModel folder)")
    else:
        problems += _model_folder_problems(infusenet, f"{vshown}/InfuseNetModel", "diffusers", "FluxControlNetModel")
    proj = variant_dir / IMAGE_PROJ_FILE
    if not proj.is_file():
        problems.append(f"{vshown}/{IMAGE_PROJ_FILE}: missing")
    else:
        problem = _torch_file_problem(proj)
        if problem:
            problems.append(f"{vshown}: {problem}")
    proj_config = variant_dir / IMAGE_PROJ_CONFIG_FILE
    if proj_config.is_file():
        _, problem = _read_json_dict(proj_config)
        if problem:
            problems.append(f"{vshown}/{IMAGE_PROJ_CONFIG_FILE}: {problem}")
    return problems


def _check_antelopev2(root: Path, shown: str) -> tuple[list[str], Path]:
    """Like idrift.faces.arcface.resolve_antelopev2: the folder itself, or an insightface root holding
    models/antelopev2. Returns (problems, the antelopev2 folder)."""
    expected = f"insightface's antelopev2 folder with {', '.join(ANTELOPEV2_REQUIRED)}"
    if not root.is_dir():
        if not root.exists() and (root.parent / "antelopev2.zip").is_file():
            return [f"{shown}: does not exist, but antelopev2.zip is next to it: unzip it there"], root
        return [f"{shown}: {'is a file, not a folder' if root.exists() else 'does not exist'}; expected {expected}"], root
    if (root / "models" / "antelopev2").is_dir():  # an insightface root
        root, shown = root / "models" / "antelopev2", f"{shown}/models/antelopev2"
    if not any(root.glob("*.onnx")) and (root / "antelopev2").is_dir() and any((root / "antelopev2").glob("*.onnx")):
        return [f"{shown}: wrong layout: the model files are one level down in {root / 'antelopev2'} "
                "(antelopev2.zip unpacked one level too deep); point there or move them up"], root
    problems = []
    missing = [name for name in ANTELOPEV2_REQUIRED if not (root / name).is_file()]
    if missing:
        what = "is empty" if not any(root.iterdir()) else f"lacks {', '.join(missing)}"
        problems.append(f"{shown}: {what}; expected {expected}")
    for name in ANTELOPEV2_REQUIRED:
        file = root / name
        if name in missing:
            continue
        if file.stat().st_size == 0:
            problems.append(f"{shown}/{name}: is empty")
        elif is_lfs_pointer(file):
            problems.append(f"{shown}/{name}: is a Git LFS pointer, not the model: run `git lfs pull`")
    return problems, root


def _check_torch_file(path: Path, shown: str, file_name: str, what: str) -> tuple[list[str], Path]:
    if path.is_dir():
        if (path / file_name).is_file():
            path, shown = path / file_name, f"{shown}/{file_name}"
        else:
            return [f"{shown}: is a folder without {file_name}; expected {what}"], path
    if not path.exists():
        return [f"{shown}: does not exist; expected {what}"], path
    problem = _torch_file_problem(path)
    return ([f"{shown}: {problem}"] if problem else []), path


def _fingerprint_or_problem(fn: Callable[[], str]) -> tuple[str | None, str | None]:
    try:
        return fn(), None
    except WeightsError as exc:
        return None, str(exc)


def check_weights(
    paths: WeightPaths,
    components: Iterable[str] | None = None,
    *,
    shared_from: str = "dev",
    option_prefix: str = "--idrift-",
) -> list[WeightStatus]:
    """Validate each component's layout without loading tensors; one WeightStatus per component.

    `components`: a subset of COMPONENTS (default: all). `shared_from`: the FLUX folder ("dev" or
    "schnell") that must also hold vae/, text encoders and tokenizers. `option_prefix`: how messages
    name options ("--idrift-" for pytest, "--" for `idrift weights check`). Every problem is one line
    naming the component, the path, what is wrong and the option and environment variable that set it.
    """
    wanted = list(COMPONENTS if components is None else components)
    unknown = [c for c in wanted if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown weight components {unknown}; known: {COMPONENTS}")
    if shared_from not in ("dev", "schnell"):
        raise ValueError(f"shared_from must be 'dev' or 'schnell', got {shared_from!r}")
    statuses = []
    for component in wanted:
        opt = OPTIONS_BY_FIELD[component]
        option = opt.named(option_prefix)
        where = paths_where(paths, component, option_prefix)
        if component == "antelopev2" and paths.antelopev2 is None:
            searched = ", ".join(str(c) for c in insightface_antelopev2_candidates())
            where = f" (default: inside the InfiniteYou root, else insightface's model root: {searched})"
        sets = f"set {option} or {opt.env}"
        try:
            path, shown = paths._located(component)
        except WeightsError as exc:
            value = getattr(paths, component) or paths.infiniteyou
            statuses.append(WeightStatus(component, str(value), False, (f"{component}{where}: {exc}; {sets}",),
                                         None, option, opt.env))
            continue
        fingerprint_fn: Callable[[], str]
        if component in ("flux_dev", "flux_schnell"):
            which = component.split("_")[1]
            problems = _check_flux(path, shown, which, shared=(which == shared_from))
            fingerprint_fn = lambda path=path: fingerprint_folder(path)
        elif component == "infiniteyou":
            var_opt = OPTIONS_BY_FIELD["infu_variant"]
            variant_names = f"{var_opt.named(option_prefix)} or {var_opt.env}"
            problems = _check_infiniteyou(path, shown, paths.infu_variant, variant_names)
            fingerprint_fn = lambda path=path: fingerprint_folder(path / INFU_VERSION_DIR / paths.infu_variant)
        elif component == "antelopev2":
            problems, path = _check_antelopev2(path, shown)
            fingerprint_fn = lambda path=path: fingerprint_folder(path)
        elif component == "arcface_ir_se50":
            problems, path = _check_torch_file(path, shown, ARCFACE_FILE, f"the file {ARCFACE_FILE} (facexlib's ArcFace IR-SE50)")
            if paths.arcface_ir_se50 is None and problems:
                searched = ", ".join(str(c) for c in _arcface_candidates())
                problems = [f"{problems[0]} (searched: {searched})"]
            fingerprint_fn = lambda path=path: fingerprint_file(path)
        elif component == "clip":
            problems = clip_layout_problems(path, shown)
            fingerprint_fn = lambda path=path: fingerprint_folder(path)
        else:  # vgg16
            problems, path = _check_torch_file(path, shown, VGG16_FILE, f"torchvision's {VGG16_FILE}")
            fingerprint_fn = lambda path=path: fingerprint_file(path)
        fingerprint = None
        if not problems:
            fingerprint, problem = _fingerprint_or_problem(fingerprint_fn)
            if problem:
                problems = [problem]
        lines = tuple(f"{component}{where}: {p}; {sets}" for p in problems)
        statuses.append(WeightStatus(component, str(path), not problems, lines, fingerprint, option, opt.env))
    return statuses


def paths_where(paths: WeightPaths, name: str, option_prefix: str) -> str:
    """" (from IDRIFT_X)" or " (from --x)" when a value was not the default, for messages."""
    opt = OPTIONS_BY_FIELD[name]
    return {"env": f" (from {opt.env})", "option": f" (from {opt.named(option_prefix)})"}.get(paths.origin(name), "")


def weights_problem_report(statuses: Iterable[WeightStatus]) -> str | None:
    """All problems as one message (None when there is none), for a single WeightsError."""
    lines = [line for s in statuses for line in s.problems]
    if not lines:
        return None
    head = (f"{len(lines)} problem{'s' if len(lines) > 1 else ''} with the real-profile weights "
            "(fix them all, then rerun; `idrift weights check` prints the full table):")
    return "\n".join([head, *("  - " + line for line in lines)])


def clip_layout_problems(folder: Path, shown: str) -> list[str]:
    """What is wrong with a CLIP folder, one line each (empty: loadable), from file names and JSON only."""
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        return [f"{shown}: {what}; expected a transformers CLIP folder (config.json, model.safetensors, "
                f"tokenizer files, {CLIP_PREPROCESSOR_FILE}), e.g. the Hugging Face repo {DEFAULT_CLIP}"]
    if not any(folder.iterdir()):
        return [f"{shown}: is empty; expected a transformers CLIP folder (config.json, model.safetensors, "
                f"tokenizer files, {CLIP_PREPROCESSOR_FILE}), e.g. the Hugging Face repo {DEFAULT_CLIP}"]
    problems = _model_folder_problems(folder, shown, "transformers")
    if (folder / "config.json").is_file():
        config, problem = _read_json_dict(folder / "config.json")
        if problem is None and config.get("model_type") != "clip":
            problems.append(f"{shown}/config.json describes model_type {config.get('model_type')!r}, expected "
                            "'clip' (a CLIPModel with text and vision towers, not a CLIPTextModel alone)")
    if not any((folder / name).is_file() for name in CLIP_TOKENIZER_FILES):
        problems.append(f"{shown}: no tokenizer files (expected one of {', '.join(CLIP_TOKENIZER_FILES)})")
    if not (folder / CLIP_PREPROCESSOR_FILE).is_file():
        problems.append(f"{shown}: missing {CLIP_PREPROCESSOR_FILE} (the image preprocessing CLIP was trained with)")
    return problems
