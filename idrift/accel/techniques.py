"""The techniques an `AccelerationPlan` (idrift.accel.plan) is made of, each with apply, undo, lossy and
provenance. The implementations live in their own modules (fast, memory, step_cache); this module only
binds them, importing torch when a technique is applied, not when a plan is named.

`stock-compile` is the peer of the fast paths: what a diffusers user gets from one call,
`model.compile_repeated_blocks(fullgraph=True)` on each backbone (FLUX's `_repeated_blocks`) and on the
repeated blocks of InfuseNet (a FluxControlNetModel declares none, so its blocks of the same two classes
are compiled the same way), with inductor's default mode. No CUDA graphs, no other kernel choices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NO_CUDA = "needs a CUDA GPU"


@dataclass(frozen=True)
class Technique:
    """One step of a plan. `apply(pipeline)` returns its report (or None); `undo(pipeline)` reverts it
    (None: irreversible); `provenance(pipeline)` is what results made with it record; `needs_cuda` is the
    reason it cannot run on a CPU (None: it can)."""

    name: str
    lossy: bool
    module: str  # where it is implemented
    apply: Callable[[Any], Any]
    undo: Callable[[Any], Any] | None
    provenance: Callable[[Any], dict]
    needs_cuda: str | None = None


# ---- stock-compile ------------------------------------------------------------------------------
def _stock_compile(pipeline) -> dict:
    from idrift.accel.fast import REPEATED_BLOCKS, repeated_blocks

    compiled: list = []

    def compile_model(model) -> None:
        if getattr(model, "_repeated_blocks", None):
            model.compile_repeated_blocks(fullgraph=True)
        else:
            for block in repeated_blocks(model):
                block.compile(fullgraph=True)
        compiled.extend(m for m in repeated_blocks(model) if m not in compiled)

    bundle = pipeline.bundle
    for model in list(bundle._backbones.values()):
        compile_model(model)
    hook = lambda name, model: compile_model(model)  # noqa: E731 - backbones the bundle builds later
    bundle.backbone_prepare.append(hook)
    compile_model(bundle.infusenet)
    pipeline._stock_compiled = (compiled, hook)
    return {"compiled_blocks": len(compiled), "block_classes": list(REPEATED_BLOCKS)}


def _stock_uncompile(pipeline) -> None:
    compiled, hook = getattr(pipeline, "_stock_compiled", ([], None))
    for module in compiled:
        module._compiled_call_impl = None
    if hook in pipeline.bundle.backbone_prepare:
        pipeline.bundle.backbone_prepare.remove(hook)
    pipeline._stock_compiled = None


def _stock_provenance(pipeline) -> dict:
    import diffusers

    compiled, _ = getattr(pipeline, "_stock_compiled", None) or ([], None)
    return {"how": "diffusers ModelMixin.compile_repeated_blocks(fullgraph=True)", "diffusers": diffusers.__version__,
            "compiled_blocks": len(compiled)}


# ---- idrift's fast paths ------------------------------------------------------------------------
def _fast_provenance(pipeline) -> dict:
    from idrift.accel.fast import provenance

    return provenance(pipeline)


def _restore(pipeline) -> None:
    from idrift.accel.fast import restore

    restore(pipeline)


def fast_path(path: str, cuda_graphs: bool = True) -> Technique:
    """The technique of a plan's path: stock-compile, lossless or fp8 (fast.accelerate's two modes).
    `cuda_graphs` False when a memory mode follows: it moves weights that a graph would replay."""
    if path == "stock-compile":
        return Technique("stock_compile", False, "diffusers.ModelMixin.compile_repeated_blocks", _stock_compile,
                         _stock_uncompile, _stock_provenance,
                         needs_cuda=f"{NO_CUDA} (torch.compile with inductor; on a CPU it builds C++ for minutes)")
    mode = {"lossless": "lossless", "fp8": "lossy"}[path]

    def apply(pipeline):
        from idrift.accel.fast import accelerate

        return accelerate(pipeline, mode, cuda_graphs="auto" if cuda_graphs else False)

    if mode == "lossless":  # on a CPU fast.accelerate skips compiling and graphs, and says so
        return Technique("lossless", False, "idrift.accel.fast", apply, _restore, _fast_provenance)
    return Technique("fp8", True, "idrift.accel.fast", apply, None, _fast_provenance,
                     needs_cuda=f"{NO_CUDA} with fp8 tensor cores (torch._scaled_mm, sm_89+)")


# ---- memory modes and the step cache ------------------------------------------------------------
def _memory_provenance(pipeline) -> dict:
    from idrift.accel.memory import memory_report

    report = memory_report(pipeline)
    keys = ("techniques", "lossy", "label", "budget_bytes", "expected_peak_bytes", "fits_budget", "bytes_moved",
            "offload_device")
    return {k: report[k] for k in keys if k in report}


def _restore_memory(pipeline) -> None:
    from idrift.accel.memory import restore_memory

    restore_memory(pipeline)


def memory_mode(memory: str) -> Technique:
    eight_bit = memory == "offload-8bit"

    def apply(pipeline):
        from idrift.accel.memory import fit_memory

        return fit_memory(pipeline, weights_8bit=eight_bit)

    return Technique("memory_" + memory.replace("-", "_"), eight_bit, "idrift.accel.memory", apply,
                     None if eight_bit else _restore_memory, _memory_provenance)


def step_cache(threshold: float) -> Technique:
    def apply(pipeline):
        from idrift.accel.step_cache import enable_step_cache

        return enable_step_cache(pipeline, threshold).settings()

    def undo(pipeline):
        from idrift.accel.step_cache import disable_step_cache

        disable_step_cache(pipeline)

    def provenance(pipeline) -> dict:
        cache = pipeline.hooks.step_cache
        return {"threshold": threshold, **({"stats": cache.stats()["total"]} if cache is not None else {})}

    return Technique("step_cache", True, "idrift.accel.step_cache", apply, undo, provenance)
