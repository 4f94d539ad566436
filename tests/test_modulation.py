"""idrift.accel.modulation on the tiny CPU profile: the table holds what each step's forward computes,
the pipeline reads it inside its steps only, and the models are unchanged outside them or once uninstalled."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch._dynamo
from tiny_runs import compiled_graph_count, pixels, tiny_spec
from torch import nn

from idrift.accel.fast import accelerate, restore
from idrift.accel.modulation import ModulationRows, StepModulation

TIMESTEPS = torch.tensor([1000.0, 750.0, 500.0, 250.0])  # as a scheduler gives them


def projections_of_forward(pipe, model, t, guidance, pooled, batch) -> torch.Tensor:
    """One step's AdaLayerNorm projections as the model's own forward computes them (the installed layers
    called outside `rows` run the original ones), concatenated in the table's order."""
    outputs = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
             for m in model.modules() if isinstance(m, ModulationRows)]
    seq = 4 if model is pipe.bundle.infusenet else 3
    hidden = torch.randn(batch, 16, model.config.in_channels)
    kwargs = dict(hidden_states=hidden, timestep=pipe._timestep(t, batch), guidance=guidance, pooled_projections=pooled,
                  encoder_hidden_states=torch.randn(batch, seq, model.config.joint_attention_dim),
                  txt_ids=torch.zeros(seq, 3), img_ids=torch.zeros(16, 3), return_dict=False)
    if model is pipe.bundle.infusenet:
        kwargs["controlnet_cond"] = torch.randn(batch, 16, model.config.in_channels)
    try:
        with torch.no_grad():
            model(**kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.cat(outputs, dim=-1)


@pytest.mark.parametrize("which", ["schnell", "dev", "infusenet"])
def test_table_rows_are_what_each_steps_forward_computes(pipe, which):
    model = pipe.bundle.infusenet if which == "infusenet" else pipe.bundle.backbone(which)
    modulation = StepModulation()
    layers = modulation.install(model)
    assert layers == sum(1 for m in model.modules() if isinstance(m, ModulationRows)) > 0
    pipe.hooks.step_modulation = modulation
    batch = 2
    pooled = torch.randn(batch, model.config.pooled_projection_dim, generator=torch.Generator().manual_seed(0))
    guidance = None
    if model.config.guidance_embeds:
        guidance = torch.full((batch,), 3.5 if which == "dev" else 1.0)
    table = pipe.modulation_table(model, TIMESTEPS, guidance, pooled)
    widths = sum(m.linear.out_features for m in model.modules() if isinstance(m, ModulationRows))
    assert table.shape == (len(TIMESTEPS), batch, widths)
    for i, t in enumerate(TIMESTEPS):
        torch.testing.assert_close(table[i], projections_of_forward(pipe, model, t, guidance, pooled, batch),
                                   rtol=1e-5, atol=1e-6)
    assert not torch.equal(table[0], table[1])  # the steps differ: each row is its own step's


def test_outside_rows_the_model_is_unchanged_and_uninstall_restores_it(pipe):
    model = pipe.bundle.backbone("schnell")
    originals = {name: m.linear for name, m in model.named_modules() if type(m).__name__.startswith("AdaLayerNorm")}
    pooled = torch.randn(1, model.config.pooled_projection_dim)
    before = projections_of_forward_plain(model, pooled)
    modulation = StepModulation()
    modulation.install(model)
    assert modulation.install(model) == 0  # twice is once
    assert torch.equal(projections_of_forward_plain(model, pooled), before)  # no row lent: the same numbers
    with modulation.rows(model, None):  # a None row lends nothing
        assert torch.equal(projections_of_forward_plain(model, pooled), before)
    modulation.uninstall()
    assert {name: m.linear for name, m in model.named_modules() if name in originals} == originals
    assert all(type(m) is nn.Linear for m in originals.values())


def projections_of_forward_plain(model, pooled) -> torch.Tensor:
    torch.manual_seed(0)
    hidden = torch.randn(1, 16, model.config.in_channels)
    with torch.no_grad():
        return model(hidden_states=hidden, timestep=torch.tensor([0.5]), pooled_projections=pooled,
                     encoder_hidden_states=torch.randn(1, 3, model.config.joint_attention_dim),
                     txt_ids=torch.zeros(3, 3), img_ids=torch.zeros(16, 3), return_dict=False)[0]


@pytest.mark.parametrize("backbone,guidance", [("dev", 3.5), ("schnell", 0.0)])
def test_pipeline_reads_the_rows_in_its_steps_and_makes_the_same_image(pipe, reference, backbone, guidance):
    spec = tiny_spec(backbone=backbone, guidance=guidance, steps=3)
    eager = pixels(pipe(spec, reference))
    accelerate(pipe, "lossless", modulation=False)
    without = pixels(pipe(spec, reference))
    restore(pipe)
    report = accelerate(pipe, "lossless")
    assert "step_modulation" in report["techniques"]
    lent = []  # per call of one installed layer: was a row lent to it?
    layer = next(m for m in pipe.bundle.backbone(backbone).modules() if isinstance(m, ModulationRows))
    hook = layer.register_forward_pre_hook(lambda m, _args: lent.append(m.current is not None))
    try:
        with_rows = pixels(pipe(spec, reference))
    finally:
        hook.remove()
    assert lent == [True] * 3  # every step read its row
    assert np.abs(with_rows - without).max() <= 1  # float32 reassociation only (other product shapes)
    restore(pipe)
    assert pipe.hooks.step_modulation is None
    assert not any(isinstance(m, ModulationRows) for m in pipe.bundle.backbone(backbone).modules())
    assert np.array_equal(pixels(pipe(spec, reference)), eager)


def test_compiled_blocks_of_one_class_still_share_their_graphs(reference):
    """Each installed layer's row is a tensor that torch.compile takes as a graph input: reading it at a
    per-layer int offset inside the block would specialise every block's graph (one per block, not per class)."""
    assert compiled_graph_count(reference, modulation=True) == compiled_graph_count(reference, modulation=False) > 0
