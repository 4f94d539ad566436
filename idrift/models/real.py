"""The `real` profile: FLUX.1-dev / FLUX.1-schnell, InfiniteYou and ArcFace IR-SE50 from local weights.

`load_real_bundle(resolve_weight_paths(...))` first runs the layout check of `idrift.models.weights_check`
and raises ONE `WeightsError` listing every problem, so a user fixes them all in one go; then it
loads, with `local_files_only=True` everywhere (idrift never downloads):

- text encoders (CLIP, T5), tokenizers and VAE from the FLUX.1-dev folder - FLUX.1-schnell ships the
  same ones - or from the FLUX.1-schnell folder when "dev" is not among `backbones` (the first of
  `backbones` in registry order: `idrift.models.backbones.shared_components_from`);
- each backbone's FlowMatchEulerDiscreteScheduler config from `<folder>/scheduler/scheduler_config.json`;
- each backbone transformer lazily, on first `bundle.backbone(name)`;
- InfuseNet (a FluxControlNetModel) from `<InfiniteYou>/infu_flux_v1.0/<variant>/InfuseNetModel`;
- the Resampler from `image_proj_model.bin` (key "image_proj"), with InfiniteYou's hyper-parameters;
- the ArcFace IR-SE50 identity encoder (kept in float32, as InfiniteYou runs it).

`save_tiny_as_real_layout` (in `idrift.models.layout`) writes the tiny profile in this exact layout,
so the tests exercise this loader on a CPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from idrift.errors import WeightsError
from idrift.models.backbones import BY_NAME, NAMES, shared_components_from
from idrift.models.bundle import ModelBundle
from idrift.models.fingerprint import fingerprint_file, fingerprint_folder
from idrift.models.paths import IMAGE_PROJ_CONFIG_FILE, IMAGE_PROJ_FILE, OPTIONS_BY_FIELD, WeightPaths
from idrift.models.weights_check import WeightStatus, check_weights, weights_problem_report

# InfiniteYou's Resampler (infuse_net/resampler.py call site in pipeline_infu_flux.py).
REAL_RESAMPLER_CONFIG = dict(dim=1280, depth=4, dim_head=64, heads=20, num_queries=8, embedding_dim=512,
                             output_dim=4096, ff_mult=4)
# T5 tokens per prompt. diffusers' FluxPipeline documents 256 as enough for schnell, but InfiniteYou
# encodes prompts with 512 tokens for both backbones; the paper swaps only the backbone path, so the
# text conditioning stays identical: 512 for both. Capped by the tokenizer's own model_max_length
# (the tiny layout's T5 tokenizer has 32).
MAX_SEQUENCE_LENGTH = 512


def _transformers_dtype_kwarg() -> str:
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _load(component: str, path: Path, what: str, fn: Callable[[], object]) -> object:
    """Run one loader; any failure becomes a WeightsError naming the component, path and option."""
    try:
        return fn()
    except WeightsError:
        raise
    except Exception as exc:  # config/weights mismatch, unreadable file, unknown class, ...
        opt = OPTIONS_BY_FIELD[component]
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"{component}: cannot load {what} from {path}: {reason}; set {opt.option} or {opt.env}"
        ) from exc


def resampler_config(variant_dir: Path) -> dict:
    """The Resampler hyper-parameters for an InfiniteYou variant folder.

    Real InfiniteYou folders have no `image_proj_config.json`: they get InfiniteYou's hyper-parameters
    (REAL_RESAMPLER_CONFIG). Only `save_tiny_as_real_layout` writes that file, because the tiny
    Resampler is smaller; its keys override the real values.
    """
    config = dict(REAL_RESAMPLER_CONFIG)
    path = variant_dir / IMAGE_PROJ_CONFIG_FILE
    if path.is_file():
        try:
            extra = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise WeightsError(f"infiniteyou: malformed {path} ({exc})") from exc
        unknown = sorted(set(extra) - set(config)) if isinstance(extra, dict) else ["<not a JSON object>"]
        if unknown:
            raise WeightsError(f"infiniteyou: {path} has unknown Resampler keys {unknown}; known: {sorted(config)}")
        config.update({k: int(v) for k, v in extra.items()})
    return config


def load_image_proj(variant_dir: Path, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The Resampler of `<variant_dir>/image_proj_model.bin` (its dict's "image_proj" entry)."""
    from idrift.models.resampler import Resampler

    path = variant_dir / IMAGE_PROJ_FILE
    opt = OPTIONS_BY_FIELD["infiniteyou"]
    config = resampler_config(variant_dir)
    state = _load("infiniteyou", path, "the Resampler weights",
                  lambda: torch.load(path, map_location="cpu", weights_only=True))
    if not isinstance(state, dict) or "image_proj" not in state:
        keys = sorted(map(str, state))[:8] if isinstance(state, dict) else type(state).__name__
        raise WeightsError(
            f"infiniteyou: {path} has no \"image_proj\" entry (it holds {keys}); expected InfiniteYou's "
            f"image_proj_model.bin, a dict with the Resampler state dict under \"image_proj\"; "
            f"set {opt.option} or {opt.env}"
        )
    model = Resampler(**config)
    try:
        model.load_state_dict(state["image_proj"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise WeightsError(
            f"infiniteyou: the \"image_proj\" weights of {path} do not fit Resampler({config}): {reason}; "
            f"set {opt.option} or {opt.env}"
        ) from exc
    return model.to(device=device, dtype=dtype).eval()


def _check_layout(paths: WeightPaths, backbones: tuple[str, ...], shared_from: str) -> dict[str, WeightStatus]:
    """The layout check of every component the bundle needs; ONE WeightsError listing every problem."""
    components = [BY_NAME[b].component for b in backbones] + ["infiniteyou", "arcface_ir_se50"]
    statuses = {s.component: s for s in check_weights(paths, components, shared_from=shared_from)}
    report = weights_problem_report(statuses.values())
    if report:
        raise WeightsError(report)
    return statuses


def _load_backbone(name: str, folder: Path, dtype: torch.dtype) -> torch.nn.Module:
    """One backbone's FLUX transformer, left on the CPU.

    The bundle runs its backbone_prepare hooks (8-bit conversion) before moving it.
    """
    from diffusers import FluxTransformer2DModel

    model = _load(BY_NAME[name].component, folder / "transformer", "the FLUX transformer",
                  lambda: FluxTransformer2DModel.from_pretrained(
                      folder, subfolder="transformer", torch_dtype=dtype, local_files_only=True))
    return model.eval()


def _scheduler_config(name: str, folder: Path) -> dict:
    """One backbone's FlowMatchEulerDiscreteScheduler config, from `<folder>/scheduler/scheduler_config.json`."""
    path = folder / "scheduler" / "scheduler_config.json"
    config = _load(BY_NAME[name].component, path, "the scheduler config", lambda: json.loads(path.read_text()))
    # Drop `_class_name` / `_diffusers_version`: the pipeline builds FlowMatchEulerDiscreteScheduler itself.
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _load_shared(component: str, shared: Path, dtype: torch.dtype) -> dict[str, object]:
    """The components both backbones share, from one FLUX folder: tokenizers, text encoders and the VAE."""
    from diffusers import AutoencoderKL
    from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

    tf_dtype = {_transformers_dtype_kwarg(): dtype}
    return dict(
        tokenizer=_load(component, shared / "tokenizer", "the CLIP tokenizer",
                        lambda: AutoTokenizer.from_pretrained(str(shared / "tokenizer"), local_files_only=True)),
        tokenizer_2=_load(component, shared / "tokenizer_2", "the T5 tokenizer",
                          lambda: AutoTokenizer.from_pretrained(str(shared / "tokenizer_2"), local_files_only=True)),
        text_encoder=_load(component, shared / "text_encoder", "the CLIP text encoder",
                           lambda: CLIPTextModel.from_pretrained(
                               shared, subfolder="text_encoder", local_files_only=True, **tf_dtype)),
        text_encoder_2=_load(component, shared / "text_encoder_2", "the T5 encoder",
                             lambda: T5EncoderModel.from_pretrained(
                                 shared, subfolder="text_encoder_2", local_files_only=True, **tf_dtype)),
        vae=_load(component, shared / "vae", "the VAE",
                  lambda: AutoencoderKL.from_pretrained(
                      shared, subfolder="vae", torch_dtype=dtype, local_files_only=True)),
    )


def _load_infusenet(variant_dir: Path, dtype: torch.dtype) -> torch.nn.Module:
    """InfuseNet (a FluxControlNetModel) from `<variant_dir>/InfuseNetModel`."""
    from diffusers import FluxControlNetModel

    infusenet_dir = variant_dir / "InfuseNetModel"
    return _load("infiniteyou", infusenet_dir, "InfuseNet",
                 lambda: FluxControlNetModel.from_pretrained(infusenet_dir, torch_dtype=dtype, local_files_only=True))


def _fingerprints(flux: dict[str, Path], shared: Path, variant_dir: Path, arcface: Path) -> dict[str, str]:
    """The fingerprint of each component's files, as the bundle records them."""
    fingerprints = {BY_NAME[b].component: fingerprint_folder(folder, include=["transformer", "scheduler"])
                    for b, folder in flux.items()}
    fingerprints.update(
        infusenet=fingerprint_folder(variant_dir / "InfuseNetModel"),
        image_proj=fingerprint_folder(variant_dir, include=[IMAGE_PROJ_FILE, IMAGE_PROJ_CONFIG_FILE]),
        vae=fingerprint_folder(shared / "vae"),
        text_encoders=fingerprint_folder(
            shared, include=["text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"]),
        arcface_ir_se50=fingerprint_file(arcface),
    )
    return fingerprints


def load_real_bundle(
    paths: WeightPaths,
    device: str | torch.device = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    backbones: Sequence[str] = NAMES,
) -> ModelBundle:
    """Load the real-profile ModelBundle. Raises one WeightsError listing every layout problem.

    `backbones`: which backbones of `idrift.models.backbones` ("dev", "schnell") the bundle offers (each
    loaded on first use).
    `device` may be "auto" (cuda when available).
    """
    from idrift.models.ir_se50 import load_ir_se50

    backbones = tuple(dict.fromkeys(backbones))
    if not backbones or any(b not in NAMES for b in backbones):
        raise ValueError(f"backbones must be a non-empty subset of {NAMES}, got {backbones}")
    shared_from = shared_components_from(backbones)
    statuses = _check_layout(paths, backbones, shared_from)

    dev = _resolve_device(device)
    flux = {b: paths.location(BY_NAME[b].component) for b in backbones}
    shared = flux[shared_from]
    variant_dir = paths.variant_dir()
    arcface = Path(statuses["arcface_ir_se50"].path)

    parts = _load_shared(BY_NAME[shared_from].component, shared, dtype)
    infusenet = _load_infusenet(variant_dir, dtype)
    image_proj = load_image_proj(variant_dir, dev, dtype)
    id_encoder = load_ir_se50(arcface, dev)  # float32, as InfiniteYou runs it

    fingerprints = _fingerprints(flux, shared, variant_dir, arcface)
    max_length = getattr(parts["tokenizer_2"], "model_max_length", MAX_SEQUENCE_LENGTH) or MAX_SEQUENCE_LENGTH
    return ModelBundle(
        profile="real",
        device=dev,
        dtype=dtype,
        backbone_factories={b: (lambda b=b: _load_backbone(b, flux[b], dtype)) for b in backbones},
        infusenet=infusenet.to(dev).eval(),
        image_proj=image_proj,
        id_encoder=id_encoder,
        vae=parts["vae"].to(dev).eval(),
        text_encoder=parts["text_encoder"].to(dev).eval(),
        tokenizer=parts["tokenizer"],
        text_encoder_2=parts["text_encoder_2"].to(dev).eval(),
        tokenizer_2=parts["tokenizer_2"],
        scheduler_configs={b: _scheduler_config(b, flux[b]) for b in backbones},
        fingerprints=fingerprints,
        max_sequence_length=int(min(MAX_SEQUENCE_LENGTH, max_length)),
    )


from idrift.models.layout import save_tiny_as_real_layout  # re-exported: the same loader on tiny weights

__all__ = ["MAX_SEQUENCE_LENGTH", "REAL_RESAMPLER_CONFIG", "load_image_proj", "load_real_bundle",
           "resampler_config", "save_tiny_as_real_layout"]
