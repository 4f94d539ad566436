"""idrift.pipeline.cuda_graphs: how graphs are keyed and when they are refused run here (CPU); capturing
and replaying need a GPU: those tests run on a CUDA machine (the device tool) and skip elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_runs import tiny_reference, tiny_spec

from idrift.models.tiny import build_tiny_bundle
from idrift.pipeline.cuda_graphs import StepGraphs, signature
from idrift.pipeline.fast import AccelerationError, accelerate, restore
from idrift.pipeline.infinite_you import InfiniteYouPipeline
from idrift.pipeline.memory import MemoryModeError, fit_memory

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")


def test_a_graph_is_keyed_by_shapes_dtypes_and_constants():
    a = torch.zeros(2, 3)
    assert signature(a) == signature(torch.ones(2, 3))  # values do not matter: they are copied in
    assert signature(a) != signature(torch.zeros(3, 2)) != signature(a.double())
    assert signature([a, None, 0.5]) != signature([a, None, 1.0])  # a scale is baked into the kernels
    assert signature((a,)) != signature([a])
    with pytest.raises(TypeError, match="cannot key a graph on an argument of type Linear"):
        signature(torch.nn.Linear(2, 2))


def test_graphs_are_refused_where_they_cannot_run():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        StepGraphs("cpu")
    pipe = InfiniteYouPipeline(build_tiny_bundle())
    with pytest.raises(AccelerationError, match="CUDA graphs need a CUDA device"):
        accelerate(pipe, "lossless", cuda_graphs=True)
    with pytest.raises(AccelerationError, match="cuda_graphs must be True, False or 'auto'"):
        accelerate(pipe, "lossless", cuda_graphs="yes")
    assert getattr(pipe, "acceleration", None) is None


def test_memory_mode_refuses_a_pipeline_with_graphs():
    pipe = InfiniteYouPipeline(build_tiny_bundle())
    pipe.step_graphs = object()  # a stand-in: real StepGraphs need CUDA; fit_memory only asks whether there are any
    with pytest.raises(MemoryModeError, match="cuda_graphs=False"):
        fit_memory(pipe)
    assert getattr(pipe, "_memory_applied", None) is None


@needs_cuda
def test_replayed_steps_give_the_same_image_bitwise():
    bundle = build_tiny_bundle(device="cuda")
    pipe = InfiniteYouPipeline(bundle)
    reference = tiny_reference()
    specs = [tiny_spec(backbone="schnell", steps=2, guidance=0.0), tiny_spec(backbone="dev", steps=3, guidance=3.5)]
    eager = [np.asarray(pipe(s, reference).image) for s in specs]
    accelerate(pipe, "lossless", compile=False, cudnn_attention=False, vae=False, cuda_graphs=True)
    graphed = [np.asarray(pipe(s, reference).image) for s in specs]  # captures
    again = [np.asarray(pipe(s, reference).image) for s in specs]  # replays
    stats = pipe.step_graphs.stats()
    # InfuseNet sees the same shapes for both backbones: one graph; one per backbone: 3 graphs
    assert stats["graphs"] == 3 and stats["replays"] == 2 * 2 * (2 + 3)  # 2 rounds x (InfuseNet + backbone) x steps
    for a, b, c in zip(eager, graphed, again):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    restore(pipe)
    assert pipe.step_graphs is None
