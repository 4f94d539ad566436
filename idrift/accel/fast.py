"""Speed-ups for an `InfiniteYouPipeline`, applied in place: `accelerate(pipeline, mode)`.

Two modes, never mixed up:

* ``"lossless"`` (the default) changes how the same function is computed, not what it computes; the
  image moves only by bf16 reassociation noise (benchmarks/test_speed.py measures how much):
    - regional compilation: every repeated transformer block of the backbones and of InfuseNet
      (`FluxTransformerBlock`, `FluxSingleTransformerBlock`) is compiled in place with
      ``block.compile(fullgraph=True, dynamic=False)``. All blocks of one class share one compiled graph
      per input shape (the backbone's 512 text tokens, InfuseNet's 8 identity tokens), so compiling costs
      seconds per class, not per block; a backbone built later by the bundle is compiled the same way;
    - the AdaLayerNorm projections of every step computed in one product per layer before the loop
      (`idrift.accel.modulation`): a step reads its rows instead of the projections' weights;
    - the MLPs' tanh GELU in the product's epilogue, and single blocks' `proj_out` without writing the
      concatenation of its inputs (`idrift.accel.epilogues`);
    - cuDNN attention first in PyTorch's SDPA priority order (CUDA only, and only after a probe shows that
      cuDNN's output is as close to an fp32 reference as the flash kernel's is);
    - the VAE in channels_last with its decoder and encoder compiled;
    - CUDA graphs of the pipeline's GPU calls: text encoders, identity tokens, VAE encoder and decoder, each
      step's InfuseNet and backbone (`idrift.accel.cuda_graphs`, CUDA only;
      captured on first use per shape, replayed after).
  Tried and left out (docs/performance.md says why): diffusers' fused q/k/v projections, inductor's
  max-autotune and coordinate-descent tuning for the blocks, PyTorch's TunableOp, a Triton kernel for
  attention's query/key RMSNorm + rotary embedding, and cuDNN's fp8 attention for the lossy mode.
  Compiled code is cached on disk by inductor's FX-graph and autotuning caches under
  ``TORCHINDUCTOR_CACHE_DIR`` (we set ``$IDRIFT_CACHE/inductor``, default ``~/.cache/idrift/inductor``, when
  the variable is unset), so a second process on the same machine compiles in a fraction of the time.
  Compilation happens on the first call; `warm_up` runs it and records its cost apart from steady-state
  latency. On a CPU, ``compile="auto"`` skips compiling (reported, with the reason); ``compile=True`` forces it.

* ``"lossy"`` (explicit only): everything above plus fp8 (e4m3) matrix products for the large Linear
  layers inside the repeated blocks (`Fp8Linear`: weights quantised once per output channel, activations
  per row at run time, `torch._scaled_mm` with fast accumulation and the bias in its epilogue). The result
  dict, `provenance(pipeline)` and `pipeline.acceleration` carry ``"lossy": True`` and the label ``"lossy"``;
  `require_lossless` lets identity baselines refuse such a pipeline. The fp8 conversion replaces the weights:
  it cannot be undone (rebuild the bundle), and it needs a CUDA GPU with fp8 tensor cores (sm_89+).

The measured figures of both modes (seconds per image, speed-ups over the eager path, peak memory, compile
time, the difference from the eager path's latents) are in docs/performance.md, generated from the baseline
that gates them. Random weights make near-noise images, so those differences cannot judge fp8's effect on
real faces.

Example (CPU, tiny profile: nothing is compiled unless forced):
    >>> from idrift.models.tiny import build_tiny_bundle
    >>> from idrift.pipeline.infinite_you import InfiniteYouPipeline
    >>> pipe = InfiniteYouPipeline(build_tiny_bundle())
    >>> report = accelerate(pipe, "lossless")
    >>> report["mode"], report["lossy"], "compile" in report["skipped"]
    ('lossless', False, True)
    >>> restore(pipe)["mode"]
    'eager'
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from idrift.accel.fp8 import Fp8Linear
from idrift.accel.probes import (  # noqa: F401 - re-exported: fast's helpers that look before they change
    REPEATED_BLOCKS,
    _probe_cudnn_attention,
    _set_sdpa_priority,
    block_linears,
    configure_compile_cache,
    probe_scaled_mm,
    repeated_blocks,
)
from idrift.errors import IdriftError

MODES = ("lossless", "lossy")
COMPILE_MODES = (None, "default", "max-autotune-no-cudagraphs")  # inductor's CUDA graphs would clash with ours
RECOMPILE_LIMIT = 64  # per code object: block classes x input shapes x (bf16, fp8) stays far below


class AccelerationError(IdriftError):
    """A speed-up cannot be applied here (wrong mode, no GPU for fp8, already lossy...)."""


# ---- the handle --------------------------------------------------------------------------------
class _Applied:
    """What `accelerate` changed, so that `restore` can undo it."""

    def __init__(self, report: dict):
        self.report = report
        self.compiled: list[nn.Module] = []
        self.sdpa_priority: list[int] | None = None
        self.vae_channels_last: nn.Module | None = None
        self.prepare_hook = None  # in bundle.backbone_prepare: transforms backbones built later
        self.fp8_layers = 0
        self.step_modulation = None  # idrift.accel.modulation.StepModulation
        self.epilogues = None  # idrift.accel.epilogues.MlpEpilogues


def _compile_blocks(model: nn.Module, applied: _Applied, backend: str, options: dict) -> int:
    count = 0
    for module in repeated_blocks(model):
        if getattr(module, "_compiled_call_impl", None) is None:
            module.compile(fullgraph=True, dynamic=False, backend=backend, **options)
            applied.compiled.append(module)
            count += 1
    return count


def _fp8_blocks(model: nn.Module, applied: _Applied, scaling: str) -> tuple[int, int]:
    layers = saved = 0
    for module in repeated_blocks(model):
        for parent, child_name, linear, many_tokens in list(block_linears(module)):
            if not many_tokens:
                continue
            fp8 = Fp8Linear.from_linear(linear, scaling)
            saved += linear.weight.numel() * (linear.weight.element_size() - 1)
            setattr(parent, child_name, fp8)
            layers += 1
    applied.fp8_layers += layers
    return layers, saved


@dataclass(frozen=True)
class _Request:
    """What one `accelerate` call asks for, checked against the pipeline and its device."""

    mode: str
    lossy: bool
    device: torch.device
    do_compile: bool
    do_graphs: bool
    fp8: bool

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def _check_request(pipeline, mode, compile, compile_mode, cuda_graphs, fp8) -> _Request:
    if mode not in MODES:
        raise AccelerationError(f"accelerate: mode must be one of {MODES}, got {mode!r}")
    _refuse_with_step_cache(pipeline, "accelerate")
    current = getattr(pipeline, "acceleration", None)
    if current is not None and current.get("mode") != "eager":
        if current.get("lossy") or mode == current.get("mode"):
            raise AccelerationError(f"accelerate: the pipeline is already accelerated ({current['mode']}); "
                                    "restore() it first (a lossy pipeline cannot be restored: rebuild the bundle)")
        restore(pipeline)
    device = torch.device(pipeline.bundle.device)
    cuda = device.type == "cuda"
    lossy = mode == "lossy"
    if lossy and fp8 and not cuda:
        raise AccelerationError(
            f"accelerate(mode='lossy'): fp8 matmuls (torch._scaled_mm) need a CUDA GPU with fp8 tensor cores "
            f"(sm_89+); this bundle is on {device}. Use mode='lossless', or fp8=False")
    if lossy and fp8 and cuda and torch.cuda.get_device_capability(device) < (8, 9):
        raise AccelerationError(f"accelerate(mode='lossy'): fp8 needs compute capability 8.9+, "
                                f"{torch.cuda.get_device_name(device)} has {torch.cuda.get_device_capability(device)}")
    if compile_mode not in COMPILE_MODES:
        raise AccelerationError(f"accelerate: compile_mode must be one of {COMPILE_MODES}, got {compile_mode!r}")
    if cuda_graphs not in (True, False, "auto"):
        raise AccelerationError(f"accelerate: cuda_graphs must be True, False or 'auto', got {cuda_graphs!r}")
    memory_mode = getattr(pipeline, "_memory_applied", None) is not None
    if cuda_graphs is True and not cuda:
        raise AccelerationError(
            f"accelerate(cuda_graphs=True): CUDA graphs need a CUDA device; this bundle is on {device}")
    if memory_mode and cuda_graphs is True:
        raise AccelerationError("accelerate(cuda_graphs=True): memory.fit_memory moves weights between devices, "
                                "and a CUDA graph replays the addresses it captured; pass cuda_graphs=False")
    do_graphs = (cuda and not memory_mode) if cuda_graphs == "auto" else cuda_graphs
    return _Request(mode, lossy, device, cuda if compile == "auto" else bool(compile), do_graphs, lossy and fp8)


def accelerate(pipeline, mode: str = "lossless", *, compile: bool | str = "auto", backend: str = "inductor",
               compile_mode: str | None = None,
               cudnn_attention: bool = True, vae: bool = True, fp8: bool = True, cuda_graphs: bool | str = "auto",
               modulation: bool = True, epilogues: bool = True,
               fp8_scaling: str = "rowwise", cache_dir: str | os.PathLike | None = None) -> dict:
    """Speed up `pipeline` (an InfiniteYouPipeline) in place; returns the report dict (also
    `pipeline.acceleration`). See the module docstring for what each mode does.

    Args:
        mode: "lossless" or "lossy" (fp8 on top of lossless; say it explicitly).
        compile: "auto" compiles on CUDA only; True forces it (CPU: inductor's C++ backend, slow to build);
            False never compiles.
        backend: torch.compile backend ("inductor"; tests use "aot_eager" to check the capture cheaply).
        compile_mode: inductor's mode for the repeated blocks, one of `COMPILE_MODES`.
            "max-autotune-no-cudagraphs" kept cuBLAS for every product (no faster) and takes minutes to warm up.
        cudnn_attention, vae, fp8, modulation, epilogues: switch single techniques off.
        cuda_graphs: "auto" captures the pipeline's CUDA graphs on CUDA only; False never (memory.fit_memory needs
            them off: it moves weights, and a graph keeps the addresses it captured).
        fp8_scaling: "rowwise" (per output channel x per token) or "tensorwise".
        cache_dir: inductor cache folder (see `configure_compile_cache`).
    """
    request = _check_request(pipeline, mode, compile, compile_mode, cuda_graphs, fp8)
    report: dict[str, Any] = {
        "mode": mode, "lossy": request.lossy, "label": "lossy" if request.lossy else "lossless",
        "device": str(request.device), "torch": torch.__version__, "techniques": [], "skipped": {},
        "reversible": True, "first_call_s": [],
    }
    applied = _Applied(report)
    t0 = time.perf_counter()
    bundle = pipeline.bundle
    # 1. attention backend (global: decided before compiling, since compiled graphs bake the choice in)
    if cudnn_attention:
        _choose_attention(applied, request.device, bundle.dtype)
    # 2. fp8 (lossy only), before compiling, so the compiled graphs contain the fp8 products
    if request.fp8:
        fp8_scaling = _fp8_setup(report, request.device, bundle.dtype, fp8_scaling)
    elif request.lossy:
        report["skipped"]["fp8"] = "fp8=False"
    # 3. compile cache and limits
    if request.do_compile:
        _compile_setup(report, backend, compile_mode, cache_dir)
    else:
        report["skipped"]["compile"] = ("compile=False" if compile is False else
                                        f"torch.compile skipped on {request.device.type} (compile='auto' compiles "
                                        "on CUDA only; pass compile=True to force)")
    # 4. backbones (loaded ones now, later ones as the bundle builds them) and InfuseNet
    _transform_models(pipeline, applied, request, modulation=modulation, epilogues=epilogues, fp8_scaling=fp8_scaling,
                      backend=backend, block_options={} if compile_mode is None or backend != "inductor"
                      else {"mode": compile_mode})
    # 5. VAE: channels_last convolutions, encoder and decoder compiled
    if vae:
        _vae(bundle, applied, request.do_compile, backend)
    # 6. CUDA graphs of the pipeline's calls, captured on first use
    _graphs(pipeline, report, request, cuda_graphs)
    report["setup_s"] = time.perf_counter() - t0
    report["note"] = ("compilation happens on the first call of each input shape: time it with warm_up(); "
                      "steady-state latency excludes it")
    pipeline.acceleration = report
    pipeline._acceleration_applied = applied
    return report


def _choose_attention(applied: _Applied, device: torch.device, dtype: torch.dtype) -> None:
    report = applied.report
    if device.type != "cuda":
        report["skipped"]["cudnn_sdpa"] = f"no cuDNN attention on {device.type}"
    elif not hasattr(torch._C, "_set_sdp_priority_order"):
        report["skipped"]["cudnn_sdpa"] = f"torch {torch.__version__} cannot reorder SDPA backends"
    else:
        probe = _probe_cudnn_attention(device, dtype)
        report["cudnn_attention"] = probe
        if probe["within_bf16_noise"]:
            from torch.nn.attention import SDPBackend

            applied.sdpa_priority = _set_sdpa_priority(SDPBackend.CUDNN_ATTENTION)
            report["techniques"].append("cudnn_sdpa")
        else:
            report["skipped"]["cudnn_sdpa"] = (
                f"cuDNN attention failed its accuracy probe: {probe['relative_error_vs_fp32']}")


def _fp8_setup(report: dict, device: torch.device, dtype: torch.dtype, fp8_scaling: str) -> str:
    """Probe fp8 matmuls here; returns the scaling to use (the requested one if it works)."""
    probe = probe_scaled_mm(device, dtype)
    report["fp8"] = {"probe": probe, "format": "e4m3", "layers": 0, "bytes_saved": 0}
    if probe["scaling"] is None:
        raise AccelerationError(f"accelerate(mode='lossy'): torch._scaled_mm is unusable here: {probe}")
    if fp8_scaling != probe["scaling"]:
        report["fp8"]["scaling_fallback"] = f"{fp8_scaling} -> {probe['scaling']}"
    report["fp8"]["scaling"] = probe["scaling"]
    report["techniques"].append(f"fp8_e4m3_{probe['scaling']}")
    report["reversible"] = False
    return probe["scaling"]


def _compile_setup(report: dict, backend: str, compile_mode: str | None, cache_dir) -> None:
    report["compile_cache_dir"] = configure_compile_cache(cache_dir)
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), RECOMPILE_LIMIT))
    if hasattr(dynamo_config, "accumulated_recompile_limit"):
        dynamo_config.accumulated_recompile_limit = max(dynamo_config.accumulated_recompile_limit, 4 * RECOMPILE_LIMIT)
    report["compile_backend"] = backend
    report["compile_mode"] = compile_mode or "default"


def _transform_models(pipeline, applied: _Applied, request: _Request, *, modulation: bool, epilogues: bool,
                      fp8_scaling: str, backend: str, block_options: dict) -> None:
    """Step modulation, fp8, MLP epilogues and regional compilation, in that order, on every backbone (those
    built later through the bundle's backbone_prepare hooks) and on InfuseNet."""
    report, bundle = applied.report, pipeline.bundle
    counts = {"blocks": 0, "modulation_layers": 0, "gelu_epilogues": 0, "single_block_forwards": 0}
    if modulation:
        from idrift.accel.modulation import StepModulation

        applied.step_modulation = StepModulation()
    if epilogues:
        from idrift.accel.epilogues import MlpEpilogues

        applied.epilogues = MlpEpilogues()

    def transform(model: nn.Module) -> nn.Module:
        if applied.step_modulation is not None:  # before compiling: the compiled blocks read the rows
            counts["modulation_layers"] += applied.step_modulation.install(model)
        if request.fp8:
            layers, saved = _fp8_blocks(model, applied, fp8_scaling)
            report["fp8"]["layers"] += layers
            report["fp8"]["bytes_saved"] += saved
        if applied.epilogues is not None:  # after fp8: its layers keep the model's own MLP code
            installed = applied.epilogues.install(model)
            counts["gelu_epilogues"] += installed["feed_forward"]
            counts["single_block_forwards"] += installed["single_blocks"]
        if request.do_compile:
            counts["blocks"] += _compile_blocks(model, applied, backend, block_options)
        return model

    for model in list(bundle._backbones.values()):
        transform(model)
    applied.prepare_hook = lambda name, model: transform(model)
    bundle.backbone_prepare.append(applied.prepare_hook)
    transform(bundle.infusenet)
    if applied.step_modulation is not None:
        pipeline.hooks.step_modulation = applied.step_modulation
        report["techniques"].append("step_modulation")
    else:
        report["skipped"]["step_modulation"] = "modulation=False"
    if applied.epilogues is not None:
        report["techniques"].append("mlp_epilogues")
    else:
        report["skipped"]["mlp_epilogues"] = "epilogues=False"
    if request.do_compile:
        report["techniques"].append("regional_compile")
    report["transformed"] = counts  # grows when a backbone is built later


def _vae(bundle, applied: _Applied, do_compile: bool, backend: str) -> None:
    bundle.vae.to(memory_format=torch.channels_last)
    applied.vae_channels_last = bundle.vae
    applied.report["techniques"].append("vae_channels_last")
    if do_compile:
        for part in (bundle.vae.decoder, bundle.vae.encoder):
            part.compile(fullgraph=True, dynamic=False, backend=backend)
            applied.compiled.append(part)
        applied.report["techniques"].append("vae_compile")


def _graphs(pipeline, report: dict, request: _Request, cuda_graphs) -> None:
    if request.do_graphs:
        from idrift.accel.cuda_graphs import CallGraphs

        pipeline.hooks.call_graphs = CallGraphs(request.device)
        report["techniques"].append("cuda_graphs")
    elif cuda_graphs == "auto" and request.cuda:
        report["skipped"]["cuda_graphs"] = "memory.fit_memory is on: it moves weights that a graph would replay"
    else:
        report["skipped"]["cuda_graphs"] = ("cuda_graphs=False" if cuda_graphs is False
                                            else f"no CUDA graphs on {request.device.type}")


def _refuse_with_step_cache(pipeline, what: str) -> None:
    # Both rewrite pipeline.acceleration: with a step cache on, its lossy label would be lost.
    if pipeline.hooks.step_cache is not None:
        raise AccelerationError(f"{what}: the pipeline has a step cache (lossy, idrift.accel.step_cache); "
                                "disable_step_cache(pipeline) first, then enable it again afterwards")


def restore(pipeline) -> dict:
    """Undo a lossless `accelerate` (eager blocks, default SDPA order, contiguous VAE, the AdaLayerNorms' own
    projections, diffusers' MLP code). A lossy pipeline's fp8 weights cannot be restored: that raises. Returns
    the new report ({"mode": "eager", ...})."""
    _refuse_with_step_cache(pipeline, "restore")
    applied: _Applied | None = getattr(pipeline, "_acceleration_applied", None)
    if applied is not None:
        if applied.fp8_layers:
            raise AccelerationError("restore: this pipeline's Linear layers were converted to fp8 (lossy); "
                                    "the bf16 weights are gone: rebuild the bundle")
        pipeline.hooks.call_graphs = None  # before anything moves: the graphs replay the old addresses
        for module in applied.compiled:
            module._compiled_call_impl = None
        if applied.step_modulation is not None:
            applied.step_modulation.uninstall()
            pipeline.hooks.step_modulation = None
        if applied.epilogues is not None:
            applied.epilogues.uninstall()
        if applied.sdpa_priority is not None:
            torch._C._set_sdp_priority_order(applied.sdpa_priority)
        if applied.vae_channels_last is not None:
            applied.vae_channels_last.to(memory_format=torch.contiguous_format)
        if applied.prepare_hook in pipeline.bundle.backbone_prepare:
            pipeline.bundle.backbone_prepare.remove(applied.prepare_hook)
    pipeline._acceleration_applied = None
    pipeline.acceleration = {"mode": "eager", "lossy": False, "label": "eager", "techniques": []}
    return pipeline.acceleration


def warm_up(pipeline, spec, reference, timer=None) -> float:
    """One call of `pipeline(spec, reference)`: compiles whatever this spec's shapes need. Returns its
    seconds (CUDA synchronised) and appends them, with the stage breakdown, to the report."""
    cuda = torch.device(pipeline.bundle.device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = pipeline(spec, reference, timer=timer)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    report = getattr(pipeline, "acceleration", None)
    if report is not None and "first_call_s" in report:
        report["first_call_s"].append({"spec": spec.config_label, "seconds": seconds,
                                       "stages": dict(result.stage_seconds)})
    return seconds


def provenance(pipeline) -> dict:
    """What to store beside results made with this pipeline: its mode and label ('lossy' when fp8)."""
    report = (getattr(pipeline, "acceleration", None)
              or {"mode": "eager", "lossy": False, "label": "eager", "techniques": []})
    keys = ("mode", "lossy", "label", "techniques", "skipped", "compile_backend", "compile_mode", "torch")
    out = {k: report[k] for k in keys if k in report}
    if "fp8" in report:
        out["fp8"] = {k: report["fp8"][k] for k in ("format", "scaling", "layers") if k in report["fp8"]}
    if "step_cache" in report:
        out["step_cache"] = dict(report["step_cache"])
    return out


def require_lossless(pipeline, purpose: str = "identity baselines") -> None:
    """Refuse a lossy pipeline for work whose numbers must match the reference (identity baselines)."""
    report = getattr(pipeline, "acceleration", None) or {}
    if report.get("lossy"):
        raise AccelerationError(f"{purpose} need a lossless pipeline; this one is accelerated in mode 'lossy' "
                                f"({', '.join(report.get('techniques', []))})")
