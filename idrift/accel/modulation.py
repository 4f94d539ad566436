"""The timestep modulation of every denoising step computed at once: `StepModulation` (lossless).

Each FLUX block scales, shifts and gates its activations by a projection of the timestep embedding: its
AdaLayerNorm computes ``linear(silu(temb))``, one row per image, and the model's final AdaLayerNormContinuous
does the same. ``temb`` depends only on the timestep, the guidance and the pooled text, all known before the
first step. So instead of reading each projection's weights for a one-row product at every step (113 MB a
double block, 6.5 GB a FLUX step: memory traffic that a one-row product cannot hide), `table` computes the
rows of all steps with one product per layer before the loop, and each step's call reads its row (`rows`).
An interleaved A/B on a GPU found it a little faster end to end, most on dev-28's many steps.

The same function computed in another order: the products have more rows, so bf16 rounding may differ (what
`benchmarks/test_speed.py` measures as the lossless path's latent difference). A model whose layers are
installed but called outside `rows` computes its projections as before (same kernels, same numbers), so a
caller that knows nothing of the table (First-Block-Cache, a direct call in a test) still gets right results.

Example (tiny CPU models):
    >>> import torch
    >>> from idrift.models.tiny import build_tiny_bundle
    >>> bundle = build_tiny_bundle()
    >>> model = bundle.backbone("schnell")
    >>> modulation = StepModulation()
    >>> modulation.install(model) > 0
    True
    >>> steps = torch.tensor([1.0, 0.75, 0.5, 0.25])  # timesteps / 1000, as the pipeline passes them
    >>> pooled = torch.randn(1, model.config.pooled_projection_dim)
    >>> table = modulation.table(model, steps, None, pooled)
    >>> table.shape[:2]  # (steps, batch, the widths of all projections one after another)
    torch.Size([4, 1])
    >>> modulation.uninstall()
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

# The AdaLayerNorm classes of FLUX and InfuseNet; each computes `self.linear(self.silu(temb))`.
NORM_CLASSES = ("AdaLayerNormZero", "AdaLayerNormZeroSingle", "AdaLayerNormContinuous")


class ModulationRows(nn.Module):
    """Stands in for an AdaLayerNorm's `linear`: inside `StepModulation.rows` it returns `current`, its slice of
    the current step's precomputed row; elsewhere (`current` None) it is the original layer."""

    def __init__(self, linear: nn.Linear, offset: int):
        super().__init__()
        self.linear = linear
        self.offset = offset  # where its columns start in a table row; read outside the compiled blocks only
        # A plain tensor attribute, set per step: torch.compile takes it as a graph input (one graph for all
        # blocks of a class), and its consumers read contiguous columns, not a gather.
        self.current: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.current is None:
            return self.linear(x)
        return self.current


class StepModulation:
    """Installs `ModulationRows` in models, builds their per-step tables and lends each step its row."""

    def __init__(self):
        self._installed: dict[int, tuple[nn.Module, list]] = {}  # id(model) -> (model, [(norm, layer)])

    def install(self, model: nn.Module) -> int:
        """Replace the projection of every AdaLayerNorm of `model`; returns how many (0 if already done)."""
        if id(model) in self._installed:
            return 0
        replaced, offset = [], 0
        for norm in model.modules():
            if type(norm).__name__ in NORM_CLASSES and type(norm.linear) is nn.Linear:
                layer = ModulationRows(norm.linear, offset)
                offset += norm.linear.out_features
                norm.linear = layer
                replaced.append((norm, layer))
        if replaced:
            self._installed[id(model)] = (model, replaced)
        return len(replaced)

    def installed(self, model: nn.Module) -> bool:
        return id(model) in self._installed

    def uninstall(self) -> None:
        """Put the original projections back in every model."""
        for _, replaced in self._installed.values():
            for norm, layer in replaced:
                norm.linear = layer.linear
        self._installed.clear()

    @torch.no_grad()
    def table(self, model: nn.Module, timesteps: torch.Tensor, guidance: torch.Tensor | None,
              pooled: torch.Tensor) -> torch.Tensor:
        """(steps, batch, width) rows for `model`: `timesteps` (steps,) or (steps, batch) as the model's
        `timestep` argument takes them (divided by 1000), `guidance` (batch,) or None as passed to it, `pooled`
        (batch, dim). Computes what the model's forward computes from these, for all steps in one product
        per layer, the layers in `install`'s order."""
        _, replaced = self._installed[id(model)]
        steps, batch = timesteps.shape[0], pooled.shape[0]
        dtype = model.x_embedder.weight.dtype
        # As the model's forward: timestep.to(hidden dtype) * 1000, guidance the same, then its embedding.
        timestep = timesteps.reshape(steps, -1).expand(steps, batch).reshape(-1).to(dtype) * 1000
        pooled_rows = pooled.repeat(steps, 1)
        if guidance is None:
            temb = model.time_text_embed(timestep, pooled_rows)
        else:
            temb = model.time_text_embed(timestep, guidance.to(dtype).repeat(steps) * 1000, pooled_rows)
        conditioning = torch.nn.functional.silu(temb).to(dtype)
        row = torch.cat([layer.linear(conditioning) for _, layer in replaced], dim=-1)
        return row.reshape(steps, batch, -1)

    @contextmanager
    def rows(self, model: nn.Module, row: torch.Tensor | None):
        """Within the block, `model`'s AdaLayerNorms return their slice of `row` (batch, width): one step of a
        `table`. A None row, or a model without installed layers, changes nothing."""
        entry = self._installed.get(id(model))
        if entry is None or row is None:
            yield
            return
        layers = [layer for _, layer in entry[1]]
        for layer in layers:
            layer.current = row[:, layer.offset:layer.offset + layer.linear.out_features]
        try:
            yield
        finally:
            for layer in layers:
                layer.current = None
