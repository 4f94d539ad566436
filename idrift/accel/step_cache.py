"""First-Block-Cache (FBC) for InfiniteYou's FLUX backbone: skip most of the backbone on steps where its
first block barely changed. Lossy: `enable_step_cache(pipeline, threshold)` marks the pipeline so.

FBC (ParaAttention; diffusers.hooks.first_block_cache) splits the backbone into a head (the first
double-stream block) and a tail (all other blocks). Every step runs the head. When the head's residual
(head_output - x) differs from the last computed step's by less than `threshold` (relative mean absolute
difference over the whole batch), the tail is skipped and its residual from the last computed step is reused:

    head_output = block_0(x) + infusenet_sample_0    (computed every step; x = x_embedder(latents))
    final       = head_output + tail_residual         (cached: final - head_output of the last computed step)
    velocity    = proj_out(norm_out(final, temb))

Why not diffusers' FBC hooks: FluxTransformer2DModel.forward adds the controlnet (InfuseNet) samples
between blocks, outside the block hooks. When diffusers' FBC skips, the head block returns head output +
cached tail residual (which already holds the last computed step's InfuseNet samples) and the skipped
blocks return their inputs, but the forward still adds the current samples after every block: InfuseNet
is counted twice (tests/test_step_cache.py shows it). Gating the sample lists while skipping would need
state shared between the hooks and the caller; and the hooks make their decision inside the first block's
forward through a `torch.compiler.disable`d function, which `block.compile(fullgraph=True)`
(idrift.accel.fast) refuses ("Skip inlining torch.compiler.disable()d function", torch 2.14). So this
module runs the backbone's own submodules in the order of diffusers 0.42's forward, with the decision
between blocks: compiled blocks stay whole, and with nothing skipped the result is bitwise the plain
forward's (tested; a diffusers upgrade that changes the forward would show there).

InfuseNet is part of the layers here: layer_0 is the first block plus InfuseNet's sample for it, and the
tail residual holds the samples of all later blocks, so each sample is counted exactly once (a skipped
step uses the current sample for block 0 and the last computed step's for the rest, as FBC reuses the
rest of the network). A step computes in full when: nothing is cached yet (first step of an image), it
is among the first `warmup_steps` steps, InfuseNet switched on or off since the last computed step (its
[start, end] window: the cached tail would carry the other regime), the input shapes changed, or
`max_consecutive_skips` steps were skipped in a row (default None: no limit, as in ParaAttention and
diffusers, so skip rates compare with theirs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np
import torch

from idrift.accel.fast import AccelerationError

_BACKBONE_PARTS = ("x_embedder", "time_text_embed", "context_embedder", "pos_embed", "transformer_blocks",
                   "single_transformer_blocks", "norm_out", "proj_out")
_EAGER = {"mode": "eager", "lossy": False, "label": "eager", "techniques": []}


@dataclass
class StepDecision:
    step: int
    computed: bool
    reason: str  # why computed or skipped
    relative_diff: float | None  # head residual vs the last computed step's; None when not comparable

    def as_dict(self) -> dict:
        return {"step": self.step, "computed": self.computed, "reason": self.reason,
                "relative_diff": self.relative_diff}


def _counts(computed: int, skipped: int) -> dict:
    steps = computed + skipped
    return {"computed": computed, "skipped": skipped, "skip_rate": skipped / steps if steps else 0.0}


def _control_sample(samples, index: int, n_blocks: int) -> torch.Tensor:
    """The controlnet sample for block `index`, routed as FluxTransformer2DModel.forward routes it (one
    InfuseNet sample feeds ceil(n_blocks / len(samples)) consecutive backbone blocks)."""
    interval = int(np.ceil(n_blocks / len(samples)))
    return samples[index // interval]


class FirstBlockCache:
    """First-Block-Cache for one FLUX backbone call per denoising step (see the module docstring).

    Args:
        threshold: skip the tail when the head residual's relative mean absolute difference to the last
            computed step's is below this (strictly, so 0 never skips). ParaAttention uses ~0.08-0.12 on FLUX.
        warmup_steps: the first this many steps of every image always compute (>= 1: step 0 has nothing cached).
        max_consecutive_skips: after this many skipped steps in a row, compute one (None: no limit).
    """

    def __init__(self, threshold: float, *, warmup_steps: int = 1, max_consecutive_skips: int | None = None):
        finite_number = isinstance(threshold, Real) and not isinstance(threshold, bool) and math.isfinite(threshold)
        if not finite_number or threshold < 0:
            raise ValueError(f"FirstBlockCache: threshold must be a finite number >= 0 (0 never skips; "
                             f"ParaAttention uses ~0.08-0.12 on FLUX), got {threshold!r}")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"FirstBlockCache: warmup_steps must be an integer >= 1 (the first step always "
                             f"computes: nothing is cached yet), got {warmup_steps!r}")
        if max_consecutive_skips is not None and (isinstance(max_consecutive_skips, bool)
                                                  or not isinstance(max_consecutive_skips, int)
                                                  or max_consecutive_skips < 1):
            raise ValueError(f"FirstBlockCache: max_consecutive_skips must be None (no limit) or an integer >= 1, "
                             f"got {max_consecutive_skips!r}")
        self.threshold = float(threshold)
        self.warmup_steps = warmup_steps
        self.max_consecutive_skips = max_consecutive_skips
        self._total_computed = 0
        self._total_skipped = 0
        self._images = 0
        self.reset()

    @property
    def technique(self) -> str:
        """The entry for `pipeline.acceleration["techniques"]`."""
        return f"first_block_cache(threshold={self.threshold!r})"

    def settings(self) -> dict:
        return {"method": "first_block_cache", "threshold": self.threshold, "warmup_steps": self.warmup_steps,
                "max_consecutive_skips": self.max_consecutive_skips}

    def reset(self) -> None:
        """Forget the cached residuals and the current image's decisions (the pipeline calls this per image)."""
        self._head_residual: torch.Tensor | None = None  # of the last computed step
        self._tail_residual: torch.Tensor | None = None
        self._infusenet_active: bool | None = None  # at the last computed step
        self._consecutive_skips = 0
        self._decisions: list[StepDecision] = []

    def stats(self) -> dict:
        """Computed/skipped counts and skip rate for the last image (with each step's decision) and in total."""
        computed = sum(d.computed for d in self._decisions)
        last = _counts(computed, len(self._decisions) - computed)
        last["decisions"] = [d.as_dict() for d in self._decisions]
        total = _counts(self._total_computed, self._total_skipped)
        total["images"] = self._images
        return {**self.settings(), "last_image": last, "total": total}

    # ---- one backbone call ------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, backbone, *, step: int, hidden_states: torch.Tensor, timestep: torch.Tensor,
                 guidance: torch.Tensor | None, pooled_projections: torch.Tensor,
                 encoder_hidden_states: torch.Tensor, controlnet_block_samples, controlnet_single_block_samples,
                 txt_ids: torch.Tensor, img_ids: torch.Tensor) -> torch.Tensor:
        """The backbone's output (the velocity) for one step; same arguments as its forward."""
        missing = [name for name in _BACKBONE_PARTS if not hasattr(backbone, name)]
        if missing:
            raise TypeError(f"FirstBlockCache: backbone must be a diffusers FluxTransformer2DModel; "
                            f"{type(backbone).__name__} has no {missing}")
        if txt_ids.ndim != 2 or img_ids.ndim != 2:
            raise ValueError(f"FirstBlockCache: txt_ids and img_ids must be 2-D (tokens, 3), got "
                             f"{tuple(txt_ids.shape)} and {tuple(img_ids.shape)}")

        # Embeddings, exactly as FluxTransformer2DModel.forward (diffusers 0.42) computes them.
        embedded = backbone.x_embedder(hidden_states)
        timestep = timestep.to(embedded.dtype) * 1000
        if guidance is None:
            temb = backbone.time_text_embed(timestep, pooled_projections)
        else:
            temb = backbone.time_text_embed(timestep, guidance.to(embedded.dtype) * 1000, pooled_projections)
        context = backbone.context_embedder(encoder_hidden_states)
        rotary = backbone.pos_embed(torch.cat((txt_ids, img_ids), dim=0))
        block_kwargs = dict(temb=temb, image_rotary_emb=rotary, joint_attention_kwargs=None)
        double_blocks, single_blocks = backbone.transformer_blocks, backbone.single_transformer_blocks

        # Head: layer 0 = the first double-stream block and InfuseNet's sample for it.
        context, head_output = double_blocks[0](hidden_states=embedded, encoder_hidden_states=context, **block_kwargs)
        if controlnet_block_samples is not None:
            head_output = head_output + _control_sample(controlnet_block_samples, 0, len(double_blocks))
        head_residual = head_output - embedded

        infusenet_active = controlnet_block_samples is not None or controlnet_single_block_samples is not None
        if not self._decisions:
            self._images += 1
        decision = self._decide(step, head_residual, infusenet_active)
        self._decisions.append(decision)

        if decision.computed:
            hidden = head_output
            for index in range(1, len(double_blocks)):
                context, hidden = double_blocks[index](hidden_states=hidden, encoder_hidden_states=context,
                                                       **block_kwargs)
                if controlnet_block_samples is not None:
                    hidden = hidden + _control_sample(controlnet_block_samples, index, len(double_blocks))
            for index, block in enumerate(single_blocks):
                context, hidden = block(hidden_states=hidden, encoder_hidden_states=context, **block_kwargs)
                if controlnet_single_block_samples is not None:
                    hidden = hidden + _control_sample(controlnet_single_block_samples, index, len(single_blocks))
            self._head_residual = head_residual
            self._tail_residual = hidden - head_output
            self._infusenet_active = infusenet_active
            self._consecutive_skips = 0
            self._total_computed += 1
        else:
            hidden = head_output + self._tail_residual
            self._consecutive_skips += 1
            self._total_skipped += 1
        return backbone.proj_out(backbone.norm_out(hidden, temb))

    def _decide(self, step: int, head_residual: torch.Tensor, infusenet_active: bool) -> StepDecision:
        previous = self._head_residual
        if previous is None or previous.shape != head_residual.shape:
            reason = "nothing cached" if previous is None else "input shape changed"
            return StepDecision(step, True, reason, None)
        # One decision for the whole batch: means over every sample, token and channel (as ParaAttention).
        # float32 reductions: a bf16 mean over millions of elements would blur a threshold like 0.05.
        diff = torch.mean((head_residual - previous).abs(), dtype=torch.float32)
        scale = torch.mean(previous.abs(), dtype=torch.float32)
        relative_diff = float(diff / scale)  # one device sync per step, outside the (compiled) blocks
        if math.isnan(relative_diff):  # 0 / 0: a head residual of zeros
            relative_diff = math.inf
        if sum(d.computed for d in self._decisions) < self.warmup_steps:
            return StepDecision(step, True, "warmup", relative_diff)
        if infusenet_active != self._infusenet_active:
            return StepDecision(step, True, "infusenet switched on or off", relative_diff)
        if self.max_consecutive_skips is not None and self._consecutive_skips >= self.max_consecutive_skips:
            return StepDecision(step, True, "max_consecutive_skips reached", relative_diff)
        if relative_diff < self.threshold:
            return StepDecision(step, False, "below threshold", relative_diff)
        return StepDecision(step, True, "above threshold", relative_diff)


# ---- pipeline switch ---------------------------------------------------------------------------------
def enable_step_cache(pipeline, threshold: float, *, warmup_steps: int = 1,
                      max_consecutive_skips: int | None = None) -> FirstBlockCache:
    """Give `pipeline` (an InfiniteYouPipeline) a FirstBlockCache and mark it lossy in `pipeline.acceleration`
    (lossy True, label "lossy", the technique with its threshold, and the settings under "step_cache"), so
    that `fast.provenance` reports it and `fast.require_lossless` refuses it. Returns the cache (its
    `stats()` give the skip rate). `disable_step_cache` undoes it."""
    if pipeline.hooks.step_cache is not None:
        raise AccelerationError("enable_step_cache: the pipeline already has a step cache; "
                                "disable_step_cache(pipeline) first")
    cache = FirstBlockCache(threshold, warmup_steps=warmup_steps, max_consecutive_skips=max_consecutive_skips)
    previous = getattr(pipeline, "acceleration", None)
    base = previous if previous is not None else _EAGER
    # A new dict (the previous one is kept whole for disable_step_cache); other entries, such as fast.warm_up's
    # "first_call_s" list, are shared, so they keep being recorded in both.
    pipeline.acceleration = {**base, "lossy": True, "label": "lossy",
                             "techniques": [*base.get("techniques", []), cache.technique],
                             "step_cache": cache.settings()}
    pipeline._acceleration_before_step_cache = previous
    pipeline.hooks.step_cache = cache
    return cache


def disable_step_cache(pipeline):
    """Remove the step cache and restore the acceleration dict from before `enable_step_cache`; returns it.
    A pipeline without a step cache is left as it is."""
    if pipeline.hooks.step_cache is None:
        return getattr(pipeline, "acceleration", None)
    pipeline.hooks.step_cache = None
    pipeline.acceleration = pipeline._acceleration_before_step_cache
    del pipeline._acceleration_before_step_cache
    return pipeline.acceleration
