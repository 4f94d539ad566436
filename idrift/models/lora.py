"""InfiniteYou's optional LoRAs (realism, anti-blur, or any FLUX LoRA) on idrift's backbones.

InfiniteYou's `load_loras` calls `pipe.load_lora_weights(path, adapter_name=name)` for each LoRA and then
`pipe.set_adapters(names, adapter_weights=scales)`: diffusers' `FluxLoraLoaderMixin` with peft. idrift does
the same through that mixin (`apply_loras`), on every backbone the bundle builds (the FLUX transformer;
the CLIP text encoder too when the file holds `text_encoder.` keys). InfuseNet is never a LoRA target, as
in the official pipeline. A LoRA changes the images, so its file fingerprint and scale are part of every
sample's key (`RunSpec.loras`, `lora_label`) and of the run's provenance (`lora_provenance`).

Command line: `--idrift-lora PATH[:SCALE]` (pytest) or `--lora PATH[:SCALE]` (idrift run), repeatable;
SCALE defaults to 1. PATH is a .safetensors LoRA file or a folder holding `pytorch_lora_weights.safetensors`.

Example:
    >>> parse_lora("realism.safetensors:0.8")  # doctest: +SKIP
    LoraSpec(path='realism.safetensors', scale=0.8)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from idrift.errors import IdriftError

LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' name inside a LoRA folder
TEXT_ENCODER_PREFIXES = ("text_encoder.", "lora_te")  # diffusers' and kohya's text-encoder keys


@dataclass(frozen=True)
class LoraSpec:
    path: str
    scale: float = 1.0

    @property
    def file(self) -> Path:
        """The LoRA's safetensors file (a folder's `pytorch_lora_weights.safetensors`)."""
        path = Path(self.path).expanduser()
        return path / LORA_FILE if path.is_dir() else path

    @property
    def fingerprint(self) -> str:
        from idrift.provenance import file_sha256_short

        return file_sha256_short(self.file)

    @property
    def adapter_name(self) -> str:
        return f"idrift_lora_{self.fingerprint}"


def parse_lora(text: str) -> LoraSpec:
    """'PATH' or 'PATH:SCALE' -> LoraSpec; a bad value raises IdriftError in one line naming it."""
    path, scale = str(text), 1.0
    head, sep, tail = path.rpartition(":")
    if sep and head:
        try:
            scale = float(tail)
        except ValueError:
            pass  # a ':' inside the path itself
        else:
            path = head
    if not math.isfinite(scale):
        raise IdriftError(f"LoRA {text!r}: the scale must be a finite number, as in PATH:0.8")
    spec = LoraSpec(path, scale)
    if not spec.file.is_file():
        what = "folder without " + LORA_FILE if Path(path).expanduser().is_dir() else "no such file"
        raise IdriftError(f"LoRA {text!r}: {what} ({spec.file}); give a FLUX LoRA .safetensors file or a diffusers "
                          f"LoRA folder, as PATH or PATH:SCALE")
    return spec


def parse_loras(values) -> tuple[LoraSpec, ...]:
    """Several --lora values (strings or LoraSpecs); the same file twice is refused."""
    specs = tuple(v if isinstance(v, LoraSpec) else parse_lora(v) for v in (values or ()))
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.fingerprint in seen:
            raise IdriftError(f"LoRA {spec.path!r} is the same file as {seen[spec.fingerprint]!r}; give each LoRA once "
                              "(with one scale)")
        seen[spec.fingerprint] = spec.path
    return specs


def lora_label(loras) -> str:
    """RunSpec.loras: 'fingerprint*scale' per LoRA, in the given order, joined by '+'; '' for none."""
    return "+".join(f"{spec.fingerprint}*{spec.scale:g}" for spec in parse_loras(loras))


def lora_provenance(loras) -> list[dict]:
    return [{"path": str(spec.file), "fingerprint": spec.fingerprint, "scale": spec.scale,
             "adapter": spec.adapter_name} for spec in parse_loras(loras)]


def _loader(transformer, text_encoder):
    """diffusers' FluxLoraLoaderMixin on the given modules: what `FluxPipeline.load_lora_weights` runs."""
    from diffusers.loaders import FluxLoraLoaderMixin

    class _FluxLoraTarget(FluxLoraLoaderMixin):
        hf_device_map = None  # no accelerate device map: load_lora_adapter's offloading check reads it

        def __init__(self):
            self.transformer = transformer
            self.text_encoder = text_encoder

        @property
        def components(self):
            return {"transformer": self.transformer, "text_encoder": self.text_encoder}

    return _FluxLoraTarget()


def load_loras(transformer, text_encoder, loras) -> None:
    """InfiniteYou's load_loras on one backbone: each LoRA as its own peft adapter, then set_adapters with
    the scales. The CLIP text encoder gets its adapters only from files that have text-encoder keys."""
    specs = parse_loras(loras)
    if not specs:
        return
    loader = _loader(transformer, text_encoder)
    for spec in specs:
        if spec.adapter_name not in getattr(transformer, "peft_config", {}):
            source = str(spec.file)
            if spec.adapter_name in (getattr(text_encoder, "peft_config", None) or {}):
                # A second backbone: the shared text encoder has this adapter already; load the rest only.
                from safetensors.torch import load_file

                source = {k: v for k, v in load_file(source).items() if not k.startswith(TEXT_ENCODER_PREFIXES)}
            try:
                loader.load_lora_weights(source, adapter_name=spec.adapter_name)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise IdriftError(f"LoRA {spec.path!r} does not fit this FLUX transformer ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0][:300]}); is it a FLUX.1 LoRA?") from exc
            if spec.adapter_name not in getattr(transformer, "peft_config", {}):  # diffusers only warns
                raise IdriftError(f"LoRA {spec.path!r} has no LoRA weights for the FLUX transformer (no keys diffusers "
                                  "maps onto it); is it a FLUX.1 LoRA?")
    loader.set_adapters([s.adapter_name for s in specs], adapter_weights=[s.scale for s in specs])


def apply_loras(bundle, loras) -> None:
    """Load `loras` into every backbone `bundle` builds from now on (and into one built already)."""
    specs = parse_loras(loras)
    if not specs:
        return

    def hook(name, model):
        load_loras(model, bundle.text_encoder, specs)

    bundle.backbone_prepare.append(hook)
    for name, model in bundle._backbones.items():
        hook(name, model)
