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
      (`idrift.pipeline.modulation`): a step reads its rows instead of the projections' weights;
    - the MLPs' tanh GELU in the product's epilogue, and single blocks' `proj_out` without writing the
      concatenation of its inputs (`idrift.pipeline.epilogues`);
    - cuDNN attention first in PyTorch's SDPA priority order (CUDA only, and only after a probe shows that
      cuDNN's output is as close to an fp32 reference as the flash kernel's is);
    - the VAE in channels_last with its decoder and encoder compiled;
    - CUDA graphs of the pipeline's GPU calls: text encoders, identity tokens, VAE encoder and decoder, each
      step's InfuseNet and backbone (`idrift.pipeline.cuda_graphs`, CUDA only;
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
from pathlib import Path
from typing import Any

import torch
from torch import nn

from idrift.errors import IdriftError
from idrift.pipeline.fp8 import FP8_MIN_FEATURES, Fp8Linear

MODES = ("lossless", "lossy")
REPEATED_BLOCKS = ("FluxTransformerBlock", "FluxSingleTransformerBlock")
COMPILE_MODES = (None, "default", "max-autotune-no-cudagraphs")  # inductor's CUDA graphs would clash with ours
RECOMPILE_LIMIT = 64  # per code object: block classes x input shapes x (bf16, fp8) stays far below


class AccelerationError(IdriftError):
    """A speed-up cannot be applied here (wrong mode, no GPU for fp8, already lossy...)."""


# ---- compile cache -------------------------------------------------------------------------------
def configure_compile_cache(cache_dir: str | os.PathLike | None = None) -> str:
    """Point inductor's on-disk caches at a persistent folder and turn them on; returns the folder.

    Precedence: `cache_dir`, then an existing ``TORCHINDUCTOR_CACHE_DIR``, then ``$IDRIFT_CACHE/inductor``,
    then ``~/.cache/idrift/inductor``. The FX-graph cache keys compiled graphs by graph, shapes, torch
    version and device, so a later run of the same blocks reuses them (no codegen, no Triton autotuning)."""
    if cache_dir is not None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir)
    elif "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        base = os.environ.get("IDRIFT_CACHE")
        folder = Path(base) / "inductor" if base else Path.home() / ".cache" / "idrift" / "inductor"
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    folder = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    os.makedirs(folder, exist_ok=True)
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    if hasattr(inductor_config, "autotune_local_cache"):
        inductor_config.autotune_local_cache = True
    return folder


def repeated_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks of `model` (FLUX's two block classes, or the model's own list)."""
    names = set(REPEATED_BLOCKS) | set(getattr(model, "_repeated_blocks", None) or ())
    return [m for m in model.modules() if type(m).__name__ in names]


def block_linears(block: nn.Module, min_features: int = FP8_MIN_FEATURES):
    """(parent, child name, Linear, many_tokens) for the large Linears of one block (both sides >=
    `min_features`, multiples of 16 as fp8 matmuls need). AdaLayerNorm projections ('norm' in the name)
    see one row, the timestep embedding: many_tokens False, an fp8 matmul would only add quantisation cost."""
    for name, module in block.named_modules():
        for child_name, child in module.named_children():
            full = f"{name}.{child_name}" if name else child_name
            if (type(child) is nn.Linear and min(child.in_features, child.out_features) >= min_features
                    and child.in_features % 16 == 0 and child.out_features % 16 == 0):
                yield module, child_name, child, "norm" not in full


def probe_scaled_mm(device: torch.device, dtype: torch.dtype) -> dict:
    """Which fp8 scaling works on this GPU, and its error against the bf16 product (fresh random data)."""
    gen = torch.Generator(device="cpu").manual_seed(1234)
    x = torch.randn(256, 1024, generator=gen).to(device, dtype)
    lin = nn.Linear(1024, 1024, device=device, dtype=dtype)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(1024, 1024, generator=gen).to(device, dtype) / 32)
        ref = lin(x).float()
    errors = {}
    for scaling in ("rowwise", "tensorwise"):
        try:
            with torch.no_grad():
                out = Fp8Linear.from_linear(lin, scaling)(x).float()
            torch.cuda.synchronize(device)
            errors[scaling] = float((out - ref).norm() / ref.norm())
        except RuntimeError as exc:  # e.g. rowwise scaling not supported by this build / GPU
            errors[scaling] = f"unsupported: {str(exc).splitlines()[0][:160]}"
    usable = [s for s in ("rowwise", "tensorwise") if isinstance(errors[s], float) and errors[s] < 0.1]
    return {"relative_error_vs_bf16": errors, "scaling": usable[0] if usable else None}


# ---- attention ---------------------------------------------------------------------------------
def _sdpa_error(backend, q, k, v, ref) -> float | str:
    from torch.nn.attention import sdpa_kernel

    try:
        with sdpa_kernel([backend]):
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v).float()
        return float((out - ref).norm() / ref.norm())
    except RuntimeError as exc:
        return f"unavailable: {str(exc).splitlines()[0][:160]}"


def _probe_cudnn_attention(device: torch.device, dtype: torch.dtype) -> dict:
    """cuDNN vs flash attention against an fp32 reference, at FLUX's head size, on fresh random data."""
    from torch.nn.attention import SDPBackend

    gen = torch.Generator(device="cpu").manual_seed(4321)
    # FLUX at 864x1152: 512 text + 3888 image tokens, 24 heads of 128, laid out as diffusers passes them
    # ((B, S, H, D) permuted to (B, H, S, D): not contiguous), so the probe takes the model's own path.
    q, k, v = (torch.randn(1, 4400, 24, 128, generator=gen).to(device, dtype).permute(0, 2, 1, 3) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    err = {"cudnn": _sdpa_error(SDPBackend.CUDNN_ATTENTION, q, k, v, ref),
           "flash": _sdpa_error(SDPBackend.FLASH_ATTENTION, q, k, v, ref)}
    flash = err["flash"] if isinstance(err["flash"], float) else 1e-2
    ok = isinstance(err["cudnn"], float) and err["cudnn"] <= max(2 * flash, 1e-3)
    return {"relative_error_vs_fp32": err, "within_bf16_noise": ok}


def _set_sdpa_priority(first) -> list[int]:
    previous = list(torch._C._get_sdp_priority_order())
    order = [int(first)] + [b for b in previous if b != int(first)]
    torch._C._set_sdp_priority_order(order)
    return previous


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
        self.step_modulation = None  # idrift.pipeline.modulation.StepModulation
        self.epilogues = None  # idrift.pipeline.epilogues.MlpEpilogues


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
    if mode not in MODES:
        raise AccelerationError(f"accelerate: mode must be one of {MODES}, got {mode!r}")
    _refuse_with_step_cache(pipeline, "accelerate")
    current = getattr(pipeline, "acceleration", None)
    if current is not None and current.get("mode") != "eager":
        if current.get("lossy") or mode == current.get("mode"):
            raise AccelerationError(f"accelerate: the pipeline is already accelerated ({current['mode']}); "
                                    "restore() it first (a lossy pipeline cannot be restored: rebuild the bundle)")
        restore(pipeline)
    bundle = pipeline.bundle
    device = torch.device(bundle.device)
    cuda = device.type == "cuda"
    lossy = mode == "lossy"
    if lossy and fp8 and not cuda:
        raise AccelerationError(
            f"accelerate(mode='lossy'): fp8 matmuls (torch._scaled_mm) need a CUDA GPU with fp8 tensor cores "
            f"(sm_89+); this bundle is on {device}. Use mode='lossless', or fp8=False")
    if lossy and fp8 and cuda and torch.cuda.get_device_capability(device) < (8, 9):
        raise AccelerationError(f"accelerate(mode='lossy'): fp8 needs compute capability 8.9+, "
                                f"{torch.cuda.get_device_name(device)} has {torch.cuda.get_device_capability(device)}")
    do_compile = cuda if compile == "auto" else bool(compile)
    if compile_mode not in COMPILE_MODES:
        raise AccelerationError(f"accelerate: compile_mode must be one of {COMPILE_MODES}, got {compile_mode!r}")
    if cuda_graphs not in (True, False, "auto"):
        raise AccelerationError(f"accelerate: cuda_graphs must be True, False or 'auto', got {cuda_graphs!r}")
    memory_mode = getattr(pipeline, "_memory_applied", None) is not None
    if cuda_graphs is True and not cuda:
        raise AccelerationError(f"accelerate(cuda_graphs=True): CUDA graphs need a CUDA device; this bundle is on {device}")
    if memory_mode and cuda_graphs is True:
        raise AccelerationError("accelerate(cuda_graphs=True): memory.fit_memory moves weights between devices, "
                                "and a CUDA graph replays the addresses it captured; pass cuda_graphs=False")
    do_graphs = (cuda and not memory_mode) if cuda_graphs == "auto" else cuda_graphs

    report: dict[str, Any] = {
        "mode": mode, "lossy": lossy, "label": "lossy" if lossy else "lossless", "device": str(device),
        "torch": torch.__version__, "techniques": [], "skipped": {}, "reversible": True,
        "first_call_s": [],
    }
    applied = _Applied(report)
    t0 = time.perf_counter()

    # 1. attention backend (global: decided before compiling, since compiled graphs bake the choice in)
    if cudnn_attention and cuda and not hasattr(torch._C, "_set_sdp_priority_order"):
        report["skipped"]["cudnn_sdpa"] = f"torch {torch.__version__} cannot reorder SDPA backends"
    elif cudnn_attention and cuda:
        probe = _probe_cudnn_attention(device, bundle.dtype)
        report["cudnn_attention"] = probe
        if probe["within_bf16_noise"]:
            from torch.nn.attention import SDPBackend

            applied.sdpa_priority = _set_sdpa_priority(SDPBackend.CUDNN_ATTENTION)
            report["techniques"].append("cudnn_sdpa")
        else:
            report["skipped"]["cudnn_sdpa"] = f"cuDNN attention failed its accuracy probe: {probe['relative_error_vs_fp32']}"
    elif cudnn_attention:
        report["skipped"]["cudnn_sdpa"] = f"no cuDNN attention on {device.type}"

    # 2. fp8 (lossy only), before compiling, so the compiled graphs contain the fp8 products
    fp8_models = []
    if lossy and fp8:
        probe = probe_scaled_mm(device, bundle.dtype)
        report["fp8"] = {"probe": probe, "format": "e4m3", "layers": 0, "bytes_saved": 0}
        if probe["scaling"] is None:
            raise AccelerationError(f"accelerate(mode='lossy'): torch._scaled_mm is unusable here: {probe}")
        if fp8_scaling != probe["scaling"]:
            report["fp8"]["scaling_fallback"] = f"{fp8_scaling} -> {probe['scaling']}"
        fp8_scaling = probe["scaling"]
        report["fp8"]["scaling"] = fp8_scaling
        report["techniques"].append(f"fp8_e4m3_{fp8_scaling}")
        report["reversible"] = False
    elif lossy:
        report["skipped"]["fp8"] = "fp8=False"

    # 3. compile cache and limits
    if do_compile:
        report["compile_cache_dir"] = configure_compile_cache(cache_dir)
        import torch._dynamo.config as dynamo_config

        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(dynamo_config, name):
                setattr(dynamo_config, name, max(getattr(dynamo_config, name), RECOMPILE_LIMIT))
        if hasattr(dynamo_config, "accumulated_recompile_limit"):
            dynamo_config.accumulated_recompile_limit = max(dynamo_config.accumulated_recompile_limit, 4 * RECOMPILE_LIMIT)
        report["compile_backend"] = backend
    else:
        report["skipped"]["compile"] = ("compile=False" if compile is False else
                                        f"torch.compile skipped on {device.type} (compile='auto' compiles on CUDA only; "
                                        "pass compile=True to force)")

    counts = {"blocks": 0, "modulation_layers": 0, "gelu_epilogues": 0, "single_block_forwards": 0}
    if modulation:
        from idrift.pipeline.modulation import StepModulation

        applied.step_modulation = StepModulation()
    if epilogues:
        from idrift.pipeline.epilogues import MlpEpilogues

        applied.epilogues = MlpEpilogues()
    block_options = {} if compile_mode is None or backend != "inductor" else {"mode": compile_mode}
    if do_compile:
        report["compile_mode"] = compile_mode or "default"

    def transform(model: nn.Module) -> nn.Module:
        if applied.step_modulation is not None:  # before compiling: the compiled blocks read the rows
            counts["modulation_layers"] += applied.step_modulation.install(model)
        if lossy and fp8:
            layers, saved = _fp8_blocks(model, applied, fp8_scaling)
            report["fp8"]["layers"] += layers
            report["fp8"]["bytes_saved"] += saved
        if applied.epilogues is not None:  # after fp8: its layers keep the model's own MLP code
            installed = applied.epilogues.install(model)
            counts["gelu_epilogues"] += installed["feed_forward"]
            counts["single_block_forwards"] += installed["single_blocks"]
        if do_compile:
            counts["blocks"] += _compile_blocks(model, applied, backend, block_options)
        return model

    # 4. backbones (loaded ones now, later ones as the bundle builds them: its backbone_prepare hooks) and InfuseNet
    for name, model in list(bundle._backbones.items()):
        transform(model)
    applied.prepare_hook = lambda name, model: transform(model)
    bundle.backbone_prepare.append(applied.prepare_hook)
    transform(bundle.infusenet)
    fp8_models.append("infusenet")
    if applied.step_modulation is not None:
        pipeline.step_modulation = applied.step_modulation
        report["techniques"].append("step_modulation")
    else:
        report["skipped"]["step_modulation"] = "modulation=False"
    if applied.epilogues is not None:
        report["techniques"].append("mlp_epilogues")
    else:
        report["skipped"]["mlp_epilogues"] = "epilogues=False"
    if do_compile:
        report["techniques"].append("regional_compile")
    report["transformed"] = counts  # grows when a backbone is built later

    # 5. VAE: channels_last convolutions, encoder and decoder compiled
    if vae:
        bundle.vae.to(memory_format=torch.channels_last)
        applied.vae_channels_last = bundle.vae
        report["techniques"].append("vae_channels_last")
        if do_compile:
            for part in (bundle.vae.decoder, bundle.vae.encoder):
                part.compile(fullgraph=True, dynamic=False, backend=backend)
                applied.compiled.append(part)
            report["techniques"].append("vae_compile")

    # 6. CUDA graphs of the pipeline's calls, captured on first use
    if do_graphs:
        from idrift.pipeline.cuda_graphs import CallGraphs

        pipeline.call_graphs = CallGraphs(device)
        report["techniques"].append("cuda_graphs")
    elif cuda_graphs == "auto" and cuda:
        report["skipped"]["cuda_graphs"] = "memory.fit_memory is on: it moves weights that a graph would replay"
    else:
        report["skipped"]["cuda_graphs"] = ("cuda_graphs=False" if cuda_graphs is False
                                            else f"no CUDA graphs on {device.type}")
    report["setup_s"] = time.perf_counter() - t0
    report["note"] = ("compilation happens on the first call of each input shape: time it with warm_up(); "
                      "steady-state latency excludes it")
    pipeline.acceleration = report
    pipeline._acceleration_applied = applied
    return report


def _refuse_with_step_cache(pipeline, what: str) -> None:
    # Both rewrite pipeline.acceleration: with a step cache on, its lossy label would be lost.
    if getattr(pipeline, "step_cache", None) is not None:
        raise AccelerationError(f"{what}: the pipeline has a step cache (lossy, idrift.pipeline.step_cache); "
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
        pipeline.call_graphs = None  # before anything moves: the graphs replay the old addresses
        for module in applied.compiled:
            module._compiled_call_impl = None
        if applied.step_modulation is not None:
            applied.step_modulation.uninstall()
            pipeline.step_modulation = None
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
    report = getattr(pipeline, "acceleration", None) or {"mode": "eager", "lossy": False, "label": "eager", "techniques": []}
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
