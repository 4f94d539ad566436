"""Fit an `InfiniteYouPipeline` in a 24 GB GPU: `fit_memory(pipeline, weights_8bit=True)`; `restore_memory`.

By default both 12B backbones stay on the GPU once used, and so does the T5-XXL encoder: far past 24 GB at
864x1152 bf16. `fit_memory` applies, in place:

1. One resident backbone (lossless). The bundle keeps at most one FLUX backbone on the GPU
   (`ModelBundle.max_resident_backbones = 1`): before another one is made resident, the previous one is
   moved to `offload_device` (the CPU) and comes back on its next use, a copy over PCIe each way; the parked
   backbone takes that much host RAM. Work that stays on one backbone pays nothing.
   `release_evicted_backbones=True` drops the evicted backbone instead and its factory builds it again on
   next use (no host RAM, but a rebuild; a rebuilt backbone passes through the GPU in bf16 before an 8-bit
   conversion).
2. Text encoder offload (lossless). CLIP and T5 live on `offload_device` and come to the GPU only while
   they encode a prompt, through diffusers' group offloading (`diffusers.hooks.apply_group_offloading`).
   ``text_encoder_offload="leaf"`` (the default) onloads one layer at a time, prefetching the next on a
   CUDA side stream, so the GPU holds two leaf modules at a time. ``"model"`` moves each encoder whole for
   its forward: the pipeline asks for the backbone before it encodes the prompt, so that puts all of T5 on
   top of everything else, past 24 GB. The pipeline caches encodings per prompt, so the copies are paid once
   per prompt, or once per image when the caches are cleared (end-to-end latency).
3. 8-bit weights (LOSSY, only with ``weights_8bit=True``). Inside the repeated transformer blocks of the
   backbones and of InfuseNet, every Linear of 1024+ inputs and outputs is stored in float8 e4m3 with one scale
   per output channel: the many-token layers as `fp8.Fp8Linear` (fp8 matmul, activations quantised per
   token; the same layers as ``accelerate(mode="lossy")``), the AdaLayerNorm projections (one row: the
   timestep embedding) as `Fp8WeightOnlyLinear` (weights upcast at the matmul, activations exact). The
   conversion replaces the weights and cannot be undone (rebuild the bundle). `pipeline.acceleration` is
   marked lossy, so `fast.provenance` reports it and `fast.require_lossless` refuses the pipeline. On CUDA
   it needs fp8 tensor cores (sm_89+); on a CPU `Fp8Linear` is emulated.

The VAE, the Resampler, IR-SE50 and InfuseNet (it runs every step) stay resident. Why only the 8-bit variant
fits 24 GB, from the parameter counts of FLUX.1's configs (bf16 2 bytes, fp8 1 byte plus a scale per output
channel): one bf16 backbone alone is about 24 GB, one 8-bit backbone about 12 GB, InfuseNet 6 GB in bf16 and
3 GB in 8-bit, plus the activations of one image (`ACTIVATION_BYTES`). A "24 GB" card has 24 GiB; the
budget "24GB" is 24e9 bytes, which leaves some room for the CUDA context and the allocator's slack.
Backbones built after `fit_memory` are converted by a `ModelBundle.backbone_prepare` hook where their
factory builds them, before they move to the device: the real loader and tiny build on the CPU, so their
bf16 weights never reach the GPU. The synthetic profile builds its random weights on the GPU, so there the
first use of each backbone still passes through a bf16 backbone's worth of memory.

Order with fast.py: apply `fast.accelerate(..., cuda_graphs=False)` first and `fit_memory` after (fit_memory
adds its techniques to the existing `pipeline.acceleration`, and refuses CUDA graphs: they replay the weight
addresses this moves); undo in reverse order (`restore_memory`, then `fast.restore`).

Example (tiny profile on a CPU: the offload device is the resident device, so the moves are no-ops, but
every code path runs):
    >>> from idrift.models.tiny import build_tiny_bundle
    >>> from idrift.pipeline.infinite_you import InfiniteYouPipeline
    >>> pipe = InfiniteYouPipeline(build_tiny_bundle())
    >>> report = fit_memory(pipe, "24GB")
    >>> report["lossy"], report["techniques"]
    (False, ['single_resident_backbone', 'text_encoder_offload_leaf'])
    >>> restore_memory(pipe)["restored"]
    ['single_resident_backbone', 'text_encoder_offload_leaf']
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from idrift.accel.fast import AccelerationError, block_linears, probe_scaled_mm, repeated_blocks
from idrift.accel.fp8 import FP8_MIN_FEATURES, Fp8Linear, quantize_fp8
from idrift.models.bundle import module_bytes

# Activations of one 864x1152 bf16 image: the eager path's measured peak on the synthetic profile
# (baselines/h100-synthetic.json, gpu_peak_gb[dev-28]) minus the weights it held, rounded up.
# Pass `activation_bytes` for other sizes.
ACTIVATION_BYTES = 3_000_000_000
TEXT_ENCODERS = ("text_encoder", "text_encoder_2")
RESIDENT_COMPONENTS = ("infusenet", "image_proj", "id_encoder", "vae")
TEXT_ENCODER_OFFLOAD = ("leaf", "model")
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
# diffusers' hook names for group offloading (diffusers.hooks.group_offloading), removed by restore_memory.
_GROUP_OFFLOADING_HOOKS = ("group_offloading", "layer_execution_tracker", "lazy_prefetch_group_offloading")


class MemoryModeError(AccelerationError):
    """fit_memory cannot be applied (already applied, no fp8 on this GPU, ...)."""


# ---- inputs --------------------------------------------------------------------------------------
def parse_bytes(size: str | int | float, name: str = "budget") -> int:
    """'24GB' -> 24e9, '24GiB' -> 24 * 2**30, 5e8 -> 500000000. Raises ValueError naming `name`."""
    if isinstance(size, bool) or not isinstance(size, (str, int, float)):
        raise ValueError(f"{name} must be a size such as '24GB', '24GiB' or a number of bytes, got {size!r}")
    if isinstance(size, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", size)
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(f"{name} {size!r} is not a size: write it like '24GB', '24GiB', '24000MB' or a "
                             f"number of bytes (units: {', '.join(u for u in _UNITS if u)})")
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    else:
        value = float(size)
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return int(value)


def _offload_device(offload_device) -> torch.device:
    try:
        device = torch.device(offload_device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"offload_device must be a device such as 'cpu', got {offload_device!r}") from exc
    if device.type == "meta":
        raise ValueError("offload_device 'meta' would drop the weights: use 'cpu'")
    return device


# ---- 8-bit weights -------------------------------------------------------------------------------
class Fp8WeightOnlyLinear(nn.Module):
    """A frozen `nn.Linear` whose weight is stored in float8 e4m3, one float32 scale per output channel, and
    upcast to the input's dtype at every call: y = x @ (w_q * s_w)^T + b. Only the storage is 8-bit (the
    activations are not quantised), for layers that see one row, where an fp8 matmul gains nothing."""

    def __init__(self, weight_fp8: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = weight_fp8.shape
        self.register_buffer("weight", weight_fp8)  # (out, in) float8_e4m3fn
        self.register_buffer("weight_scale", weight_scale)  # (out, 1) float32
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Fp8WeightOnlyLinear:
        q, scale = quantize_fp8(linear.weight.detach(), dim=1)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(q.contiguous(), scale.contiguous(), bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8=e4m3 weight-only"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(x.dtype) * self.weight_scale.to(x.dtype)
        return F.linear(x, weight, None if self.bias is None else self.bias.to(x.dtype))


def convert_to_8bit(model: nn.Module, scaling: str = "rowwise", min_features: int = FP8_MIN_FEATURES) -> dict:
    """Store the large Linears of `model`'s repeated blocks in fp8 (in place; cannot be undone). Block by
    block, so at most one block's bf16 weights are held twice. Returns counts and bytes saved."""
    counts = {"fp8_matmul_layers": 0, "fp8_weight_only_layers": 0, "bytes_before": 0, "bytes_after": 0}
    for block in repeated_blocks(model):
        for parent, child_name, linear, many_tokens in list(block_linears(block, min_features)):
            new = Fp8Linear.from_linear(linear, scaling) if many_tokens else Fp8WeightOnlyLinear.from_linear(linear)
            counts["bytes_before"] += module_bytes(linear)
            counts["bytes_after"] += module_bytes(new)
            counts["fp8_matmul_layers" if many_tokens else "fp8_weight_only_layers"] += 1
            setattr(parent, child_name, new)
    return counts


def _bytes_saved_by_8bit(model: nn.Module, min_features: int) -> int:
    """What `convert_to_8bit` would save on `model`, without converting: 1 byte per weight, plus a float32
    scale per output channel, instead of the weight's element size."""
    saved = 0
    for block in repeated_blocks(model):
        for _, _, linear, _ in block_linears(block, min_features):
            w = linear.weight
            saved += w.numel() * (w.element_size() - 1) - 4 * w.shape[0]
    return max(saved, 0)


# ---- text encoder offload ------------------------------------------------------------------------
def _offload_text_encoder(module: nn.Module, resident: torch.device, offload: torch.device, level: str) -> None:
    from diffusers.hooks import apply_group_offloading

    if level == "leaf":
        stream = resident.type == "cuda"  # prefetch the next layer on a side stream while this one runs
        apply_group_offloading(module, onload_device=resident, offload_device=offload, offload_type="leaf_level",
                               use_stream=stream, record_stream=stream)
    else:  # the encoders have no ModuleList at their top level: block_level there is one group, the whole model
        apply_group_offloading(module, onload_device=resident, offload_device=offload, offload_type="block_level",
                               num_blocks_per_group=1)


def _remove_offload(module: nn.Module, resident: torch.device) -> None:
    from diffusers.hooks import HookRegistry

    registry = HookRegistry.check_if_exists_or_initialize(module)
    for name in _GROUP_OFFLOADING_HOOKS:
        registry.remove_hook(name, recurse=True)
    module.to(resident)


def _largest_leaves(module: nn.Module, count: int) -> int:
    """Bytes of the `count` largest leaf modules (what leaf-level offload holds on the GPU at once)."""
    sizes = sorted((module_bytes(m) for m in module.modules() if not list(m.children())), reverse=True)
    return sum(sizes[:count])


# ---- apply, report, restore ----------------------------------------------------------------------
@dataclass
class _MemoryApplied:
    budget_bytes: int
    activation_bytes: int
    offload_device: torch.device
    text_encoder_offload: str
    release_evicted_backbones: bool
    weights_8bit: bool
    fp8_min_features: int
    acceleration_before: dict | None
    techniques: list[str]
    first_backbone_move: int  # index into bundle.backbone_moves: moves since fit_memory
    setup: dict = field(default_factory=dict)
    acceleration_set: dict | None = None  # the dict fit_memory put in pipeline.acceleration


def _check_fit(pipeline, text_encoder_offload: str, activation_bytes, fp8_min_features) -> None:
    if text_encoder_offload not in TEXT_ENCODER_OFFLOAD:
        raise ValueError(f"text_encoder_offload must be one of {TEXT_ENCODER_OFFLOAD}, got {text_encoder_offload!r}")
    if isinstance(activation_bytes, bool) or not isinstance(activation_bytes, int) or activation_bytes < 0:
        raise ValueError(f"activation_bytes must be a non-negative number of bytes, got {activation_bytes!r}")
    if isinstance(fp8_min_features, bool) or not isinstance(fp8_min_features, int) or fp8_min_features < 16:
        raise ValueError(f"fp8_min_features must be an integer >= 16, got {fp8_min_features!r}")
    if getattr(pipeline, "_memory_applied", None) is not None:
        raise MemoryModeError("fit_memory: already applied to this pipeline; restore_memory(pipeline) first")
    if pipeline.hooks.call_graphs is not None:
        raise MemoryModeError("fit_memory: the pipeline replays CUDA graphs (fast.accelerate), "
                              "which keep the addresses of the weights this would move; "
                              "accelerate with cuda_graphs=False")


def _probe_8bit(resident: torch.device, dtype: torch.dtype, setup: dict) -> str:
    """The fp8 scaling that works on this GPU (refusing one without fp8 tensor cores)."""
    if torch.cuda.get_device_capability(resident) < (8, 9):
        raise MemoryModeError(f"fit_memory(weights_8bit=True): fp8 needs compute capability 8.9+, "
                              f"{torch.cuda.get_device_name(resident)} has "
                              f"{torch.cuda.get_device_capability(resident)}; "
                              "use weights_8bit=False")
    probe = probe_scaled_mm(resident, dtype)
    if probe["scaling"] is None:
        raise MemoryModeError(f"fit_memory(weights_8bit=True): torch._scaled_mm is unusable here: {probe}")
    setup["fp8_probe"] = probe
    return probe["scaling"]


def _weights_to_8bit(bundle, scaling: str, fp8_min_features: int, setup: dict) -> list[str]:
    fp8 = {"format": "e4m3", "scaling": scaling, "models": {}}
    for name, model in [*bundle._backbones.items(), ("infusenet", bundle.infusenet)]:
        fp8["models"][name] = convert_to_8bit(model, scaling, fp8_min_features)

    def built_in_8bit(name, model):
        fp8["models"][name] = convert_to_8bit(model, scaling, fp8_min_features)

    # Backbones built later are converted where their factory builds them, before they move to the
    # device: the real loader builds on the CPU, so their bf16 weights never reach the GPU. (The
    # synthetic profile builds random weights on the GPU: there the bf16 backbone passes through it.)
    # Kept by restore_memory: the pipeline stays 8-bit (and labelled lossy) for good.
    bundle.backbone_prepare.append(built_in_8bit)
    setup["fp8"] = fp8
    return [f"fp8_e4m3_{scaling}_block_linears", "fp8_e4m3_weight_only_adaln"]


def fit_memory(pipeline, budget: str | int | float = "24GB", *, weights_8bit: bool = False,
               offload_device: str | torch.device = "cpu", text_encoder_offload: str = "leaf",
               release_evicted_backbones: bool = False, activation_bytes: int = ACTIVATION_BYTES,
               fp8_min_features: int = FP8_MIN_FEATURES) -> dict:
    """Make `pipeline` (an InfiniteYouPipeline) use less GPU memory, in place; returns `memory_report`
    (also kept as `pipeline.memory`). See the module docstring for what each technique does and costs.

    Args:
        budget: the GPU memory to fit, e.g. "24GB" (24e9 bytes), "24GiB", or bytes. Only judged: the
            report says whether the expected peak fits; nothing lossy is switched on to make it fit.
        weights_8bit: also store the large block Linears in fp8 (LOSSY, irreversible).
        offload_device: where offloaded weights wait ("cpu").
        text_encoder_offload: "leaf" (one layer at a time, prefetched) or "model" (each encoder whole).
        release_evicted_backbones: drop an evicted backbone (rebuilt on next use) instead of parking it.
        activation_bytes: allowance for activations in the expected peak (default: one 864x1152 image).
        fp8_min_features: smallest Linear converted to 8-bit (tests lower it for the tiny models).

    Converts backbones where they are: a backbone parked on the CPU by an earlier fit_memory converts there
    (slowly, at real size); backbones built later are converted as they are built.
    """
    budget_bytes = parse_bytes(budget, "budget")
    offload = _offload_device(offload_device)
    _check_fit(pipeline, text_encoder_offload, activation_bytes, fp8_min_features)
    bundle = pipeline.bundle
    resident = torch.device(bundle.device)
    setup: dict = {"bytes_moved": 0}
    scaling = _probe_8bit(resident, bundle.dtype, setup) if weights_8bit and resident.type == "cuda" else "rowwise"
    start = time.perf_counter()
    techniques = []

    # 1. 8-bit first, while the weights are on the device (fast), so that evicted backbones move 8-bit
    if weights_8bit:
        techniques += _weights_to_8bit(bundle, scaling, fp8_min_features, setup)

    # 2. one resident backbone
    bundle.max_resident_backbones = 1
    bundle.backbone_offload_device = None if release_evicted_backbones else offload
    moves_before = len(bundle.backbone_moves)
    bundle.evict_backbones(keep=1)
    setup["bytes_moved"] += sum(m["bytes"] for m in bundle.backbone_moves[moves_before:] if m["to"] != "released")
    techniques.append("single_resident_backbone" + ("_release" if release_evicted_backbones else ""))

    # 3. text encoders on the offload device, onloaded while they encode
    for name in TEXT_ENCODERS:
        module = getattr(bundle, name)
        setup["bytes_moved"] += module_bytes(module)
        _offload_text_encoder(module, resident, offload, text_encoder_offload)
    techniques.append(f"text_encoder_offload_{text_encoder_offload}")
    if resident.type == "cuda":
        torch.cuda.synchronize(resident)
        torch.cuda.empty_cache()  # give the freed blocks back, so that "reserved" shows the new footprint
    setup["seconds"] = time.perf_counter() - start

    pipeline._memory_applied = _MemoryApplied(
        budget_bytes=budget_bytes, activation_bytes=activation_bytes, offload_device=offload,
        text_encoder_offload=text_encoder_offload, release_evicted_backbones=release_evicted_backbones,
        weights_8bit=weights_8bit, fp8_min_features=fp8_min_features,
        acceleration_before=getattr(pipeline, "acceleration", None), techniques=techniques,
        first_backbone_move=len(bundle.backbone_moves), setup=setup)
    pipeline.acceleration = _acceleration_with(pipeline._memory_applied.acceleration_before, techniques,
                                               lossy=weights_8bit)
    pipeline._memory_applied.acceleration_set = pipeline.acceleration
    pipeline.memory = memory_report(pipeline)
    return pipeline.memory


def _acceleration_with(previous: dict | None, techniques: list[str], lossy: bool) -> dict:
    """`previous` (fast.accelerate's report, or eager) plus our techniques. On an eager pipeline the mode
    becomes "memory": fast.accelerate then refuses a lossy one instead of overwriting its label."""
    base = previous or {"mode": "eager", "lossy": False, "label": "eager", "techniques": []}
    out = {**base, "techniques": [*base.get("techniques", []), *techniques]}
    if base.get("mode", "eager") == "eager":
        out["mode"] = "memory"
        out["label"] = "lossless"
    if lossy:
        out.update(lossy=True, label="lossy", reversible=False)
    return out


def memory_report(pipeline) -> dict:
    """Where the weights are and what the GPU is expected to hold, from the pipeline's actual modules.

    `expected_peak_bytes` = resident weights (the largest built backbone, InfuseNet, VAE, Resampler,
    IR-SE50) + what the text encoders hold while encoding + the activation allowance; `fits_budget` is
    None until a backbone has been built (its size is unknown before)."""
    applied: _MemoryApplied | None = getattr(pipeline, "_memory_applied", None)
    if applied is None:
        raise MemoryModeError("memory_report: fit_memory(pipeline) has not been applied")
    bundle = pipeline.bundle
    components = {}
    for name in RESIDENT_COMPONENTS:
        size = module_bytes(getattr(bundle, name))
        components[name] = {"bytes": size, "resident_bytes": size, "devices": _devices(getattr(bundle, name))}
    for name in TEXT_ENCODERS:
        module = getattr(bundle, name)
        size = module_bytes(module)
        transient = _largest_leaves(module, 2) if applied.text_encoder_offload == "leaf" else size
        components[name] = {"bytes": size, "resident_bytes": 0, "while_encoding_bytes": transient,
                            "devices": _devices(module)}
    backbones = {}
    for name in bundle.backbone_factories:
        if name in bundle._backbones:
            model = bundle._backbones[name]
            where = "resident" if name in bundle.resident_backbones() else "offloaded"
            backbones[name] = {"bytes": module_bytes(model), "where": where, "devices": _devices(model)}
        else:
            backbones[name] = {"bytes": None, "where": "released" if _released(bundle, name) else "not built"}
    built = [b["bytes"] for b in backbones.values() if b["bytes"] is not None]
    resident_bytes = sum(c["resident_bytes"] for c in components.values()) + (max(built) if built else 0)
    while_encoding = max(components[name]["while_encoding_bytes"] for name in TEXT_ENCODERS)
    peak = resident_bytes + while_encoding + applied.activation_bytes if built else None
    moves = bundle.backbone_moves[applied.first_backbone_move:]
    report = {
        "budget_bytes": applied.budget_bytes,
        "device": str(bundle.device),
        "offload_device": str(applied.offload_device),
        "techniques": list(applied.techniques),
        "lossy": applied.weights_8bit,
        "label": "lossy" if applied.weights_8bit else "lossless",
        "reversible": not applied.weights_8bit,
        "components": components,
        "backbones": backbones,
        "resident_bytes_expected": resident_bytes if built else None,
        "activation_bytes": applied.activation_bytes,
        "expected_peak_bytes": peak,
        "fits_budget": None if peak is None else peak <= applied.budget_bytes,
        "bytes_moved": {
            "setup": applied.setup["bytes_moved"],
            "text_encoders_per_encoding": sum(components[name]["bytes"] for name in TEXT_ENCODERS),
            "backbone_swaps": sum(m["bytes"] for m in moves if m["to"] != "released"),
            "backbone_moves": len(moves),
        },
        "setup_s": applied.setup["seconds"],
    }
    if peak is None:
        report["note"] = "no backbone built yet: call memory_report(pipeline) after the first image"
    if applied.weights_8bit:
        report["fp8"] = applied.setup["fp8"]
    elif built:
        saved = (max(_bytes_saved_by_8bit(bundle._backbones[n], applied.fp8_min_features) for n in bundle._backbones)
                 + _bytes_saved_by_8bit(bundle.infusenet, applied.fp8_min_features))
        report["expected_peak_bytes_with_8bit"] = peak - saved
    return report


def _devices(module: nn.Module) -> list[str]:
    return sorted({str(t.device) for t in (*module.parameters(), *module.buffers())})


def _released(bundle, name: str) -> bool:
    return any(m["backbone"] == name and m["to"] == "released" for m in bundle.backbone_moves)


def restore_memory(pipeline) -> dict:
    """Undo `fit_memory` where it can: the text encoders go back to the device for good, and backbones may
    all be resident again (an offloaded one returns on its next use; a released one is rebuilt). 8-bit
    weights cannot be undone: the pipeline stays lossy (rebuild the bundle for bf16). Returns
    {"restored": [...], "not_undone": [...]}."""
    applied: _MemoryApplied | None = getattr(pipeline, "_memory_applied", None)
    if applied is None:
        return {"restored": [], "not_undone": []}
    bundle = pipeline.bundle
    resident = torch.device(bundle.device)
    for name in TEXT_ENCODERS:
        _remove_offload(getattr(bundle, name), resident)
    bundle.max_resident_backbones = None
    bundle.backbone_offload_device = None
    restored = [t for t in applied.techniques if not t.startswith("fp8_")]
    not_undone = [t for t in applied.techniques if t.startswith("fp8_")]
    if not_undone:  # fp8 stays, and stays labelled: later backbones are still built in 8-bit
        pipeline.acceleration = _acceleration_with(applied.acceleration_before, not_undone, lossy=True)
    elif getattr(pipeline, "acceleration", None) is applied.acceleration_set:
        pipeline.acceleration = applied.acceleration_before
    # else: something replaced the dict after fit_memory (fast.accelerate after a lossless fit_memory): keep it
    pipeline._memory_applied = None
    pipeline.memory = None
    return {"restored": restored, "not_undone": not_undone}
