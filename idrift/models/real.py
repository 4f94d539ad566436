"""The `real` profile: FLUX.1-dev / FLUX.1-schnell, InfiniteYou and ArcFace IR-SE50 from local weights.

`load_real_bundle(resolve_weight_paths(...))` first runs the layout check of `idrift.models.paths`
and raises ONE `WeightsError` listing every problem, so a user fixes them all in one go; then it
loads, with `local_files_only=True` everywhere (idrift never downloads):

- text encoders (CLIP, T5), tokenizers and VAE from the FLUX.1-dev folder - FLUX.1-schnell ships the
  same ones - or from the FLUX.1-schnell folder when "dev" is not among `backbones`;
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
from idrift.models.bundle import ModelBundle
from idrift.models.fingerprint import fingerprint_file, fingerprint_folder
from idrift.models.paths import (
    IMAGE_PROJ_CONFIG_FILE,
    IMAGE_PROJ_FILE,
    OPTIONS_BY_FIELD,
    WeightPaths,
    check_weights,
    weights_problem_report,
)

# InfiniteYou's Resampler (infuse_net/resampler.py call site in pipeline_infu_flux.py).
REAL_RESAMPLER_CONFIG = dict(dim=1280, depth=4, dim_head=64, heads=20, num_queries=8, embedding_dim=512,
                             output_dim=4096, ff_mult=4)
# T5 tokens per prompt. diffusers' FluxPipeline documents 256 as enough for schnell, but InfiniteYou
# encodes prompts with 512 tokens for both backbones; the paper swaps only the backbone path, so the
# text conditioning stays identical: 512 for both. Capped by the tokenizer's own model_max_length
# (the tiny layout's T5 tokenizer has 32).
MAX_SEQUENCE_LENGTH = 512
BACKBONES = ("dev", "schnell")


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
        raise WeightsError(f"{component}: cannot load {what} from {path}: {reason}; set {opt.option} or {opt.env}") from exc


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


def load_real_bundle(
    paths: WeightPaths,
    device: str | torch.device = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    backbones: Sequence[str] = BACKBONES,
) -> ModelBundle:
    """Load the real-profile ModelBundle. Raises one WeightsError listing every layout problem.

    `backbones`: which of "dev" and "schnell" the bundle offers (each loaded on first use).
    `device` may be "auto" (cuda when available).
    """
    from diffusers import AutoencoderKL, FluxControlNetModel, FluxTransformer2DModel
    from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

    from idrift.models.ir_se50 import load_ir_se50

    backbones = tuple(dict.fromkeys(backbones))
    if not backbones or any(b not in BACKBONES for b in backbones):
        raise ValueError(f"backbones must be a non-empty subset of {BACKBONES}, got {backbones}")
    shared_from = "dev" if "dev" in backbones else "schnell"
    components = [f"flux_{b}" for b in backbones] + ["infiniteyou", "arcface_ir_se50"]
    statuses = {s.component: s for s in check_weights(paths, components, shared_from=shared_from)}
    report = weights_problem_report(statuses.values())
    if report:
        raise WeightsError(report)

    dev = _resolve_device(device)
    flux = {b: paths.location(f"flux_{b}") for b in backbones}
    shared = flux[shared_from]
    shared_component = f"flux_{shared_from}"
    variant_dir = paths.variant_dir()
    infusenet_dir = variant_dir / "InfuseNetModel"
    arcface = Path(statuses["arcface_ir_se50"].path)
    tf_dtype = {_transformers_dtype_kwarg(): dtype}

    def load_backbone(name: str) -> torch.nn.Module:
        # Left on the CPU: the bundle runs its backbone_prepare hooks (8-bit conversion) before moving it.
        folder = flux[name]
        model = _load(f"flux_{name}", folder / "transformer", "the FLUX transformer", lambda: FluxTransformer2DModel.from_pretrained(
            folder, subfolder="transformer", torch_dtype=dtype, local_files_only=True))
        return model.eval()

    def scheduler_config(name: str) -> dict:
        path = flux[name] / "scheduler" / "scheduler_config.json"
        config = _load(f"flux_{name}", path, "the scheduler config", lambda: json.loads(path.read_text()))
        # Drop `_class_name` / `_diffusers_version`: the pipeline builds FlowMatchEulerDiscreteScheduler itself.
        return {k: v for k, v in config.items() if not k.startswith("_")}

    tokenizer = _load(shared_component, shared / "tokenizer", "the CLIP tokenizer", lambda: AutoTokenizer.from_pretrained(
        str(shared / "tokenizer"), local_files_only=True))
    tokenizer_2 = _load(shared_component, shared / "tokenizer_2", "the T5 tokenizer", lambda: AutoTokenizer.from_pretrained(
        str(shared / "tokenizer_2"), local_files_only=True))
    text_encoder = _load(shared_component, shared / "text_encoder", "the CLIP text encoder", lambda: CLIPTextModel.from_pretrained(
        shared, subfolder="text_encoder", local_files_only=True, **tf_dtype))
    text_encoder_2 = _load(shared_component, shared / "text_encoder_2", "the T5 encoder", lambda: T5EncoderModel.from_pretrained(
        shared, subfolder="text_encoder_2", local_files_only=True, **tf_dtype))
    vae = _load(shared_component, shared / "vae", "the VAE", lambda: AutoencoderKL.from_pretrained(
        shared, subfolder="vae", torch_dtype=dtype, local_files_only=True))
    infusenet = _load("infiniteyou", infusenet_dir, "InfuseNet", lambda: FluxControlNetModel.from_pretrained(
        infusenet_dir, torch_dtype=dtype, local_files_only=True))
    image_proj = load_image_proj(variant_dir, dev, dtype)
    id_encoder = load_ir_se50(arcface, dev)  # float32, as InfiniteYou runs it

    fingerprints = {f"flux_{b}": fingerprint_folder(flux[b], include=["transformer", "scheduler"]) for b in backbones}
    fingerprints.update(
        infusenet=fingerprint_folder(infusenet_dir),
        image_proj=fingerprint_folder(variant_dir, include=[IMAGE_PROJ_FILE, IMAGE_PROJ_CONFIG_FILE]),
        vae=fingerprint_folder(shared / "vae"),
        text_encoders=fingerprint_folder(shared, include=["text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"]),
        arcface_ir_se50=fingerprint_file(arcface),
    )
    max_length = getattr(tokenizer_2, "model_max_length", MAX_SEQUENCE_LENGTH) or MAX_SEQUENCE_LENGTH
    return ModelBundle(
        profile="real",
        device=dev,
        dtype=dtype,
        backbone_factories={b: (lambda b=b: load_backbone(b)) for b in backbones},
        infusenet=infusenet.to(dev).eval(),
        image_proj=image_proj,
        id_encoder=id_encoder,
        vae=vae.to(dev).eval(),
        text_encoder=text_encoder.to(dev).eval(),
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2.to(dev).eval(),
        tokenizer_2=tokenizer_2,
        scheduler_configs={b: scheduler_config(b) for b in backbones},
        fingerprints=fingerprints,
        max_sequence_length=int(min(MAX_SEQUENCE_LENGTH, max_length)),
    )


from idrift.models.layout import save_tiny_as_real_layout  # re-exported: the same loader on tiny weights

__all__ = ["MAX_SEQUENCE_LENGTH", "REAL_RESAMPLER_CONFIG", "load_image_proj", "load_real_bundle", "resampler_config",
           "save_tiny_as_real_layout"]
