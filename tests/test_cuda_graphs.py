"""idrift.accel.cuda_graphs: how graphs are keyed and when they are refused run here (CPU); capturing
and replaying need a GPU: those tests run on a CUDA machine (the device tool) and skip elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_runs import tiny_reference, tiny_spec

from idrift.accel.cuda_graphs import CallGraphs, GraphCaptureError, signature
from idrift.accel.fast import AccelerationError, accelerate, restore
from idrift.accel.memory import MemoryModeError, fit_memory
from idrift.models.tiny import build_tiny_bundle
from idrift.pipeline.infinite_you import InfiniteYouPipeline

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
        CallGraphs("cpu")
    pipe = InfiniteYouPipeline(build_tiny_bundle())
    with pytest.raises(AccelerationError, match="CUDA graphs need a CUDA device"):
        accelerate(pipe, "lossless", cuda_graphs=True)
    with pytest.raises(AccelerationError, match="cuda_graphs must be True, False or 'auto'"):
        accelerate(pipe, "lossless", cuda_graphs="yes")
    with pytest.raises(AccelerationError, match="compile_mode must be one of"):
        accelerate(pipe, "lossless", compile_mode="reduce-overhead")  # inductor's own graphs: ours replace them
    assert getattr(pipe, "acceleration", None) is None


def test_memory_mode_refuses_a_pipeline_with_graphs():
    pipe = InfiniteYouPipeline(build_tiny_bundle())
    # a stand-in: real CallGraphs need CUDA; fit_memory only asks whether there are any
    pipe.hooks.call_graphs = object()
    with pytest.raises(MemoryModeError, match="cuda_graphs=False"):
        fit_memory(pipe)
    assert getattr(pipe, "_memory_applied", None) is None


@needs_cuda
def test_replayed_calls_give_the_same_image_bitwise():
    bundle = build_tiny_bundle(device="cuda")
    pipe = InfiniteYouPipeline(bundle)
    reference = tiny_reference()
    specs = [tiny_spec(backbone="schnell", steps=2, guidance=0.0), tiny_spec(backbone="dev", steps=3, guidance=3.5)]

    def images():  # caches cleared: every image encodes its text, identity and control image again
        out = []
        for spec in specs:
            pipe.clear_caches()
            out.append(np.asarray(pipe(spec, reference).image))
        return out

    eager = images()
    # step modulation and MLP epilogues off: they change the products, so their images are not bitwise the eager
    # ones (below)
    accelerate(pipe, "lossless", compile=False, cudnn_attention=False, vae=False, modulation=False, epilogues=False,
               cuda_graphs=True)
    graphed = images()  # captures
    again = images()  # replays
    stats = pipe.hooks.call_graphs.stats()
    # one graph per call and shape: InfuseNet sees the same shapes for both backbones, each backbone has its own
    assert stats["graphs"] == 8 and stats["eager_calls"] == []
    per_image = {"clip": 1, "t5": 1, "identity_tokens": 1, "vae_encode": 1, "vae_decode": 1}
    assert stats["replays_by_call"] == {**{k: 2 * 2 * v for k, v in per_image.items()},
                                        "infusenet": 2 * (2 + 3), "backbone": 2 * (2 + 3)}
    for a, b, c in zip(eager, graphed, again):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    # cached encodings are copies: a later replay of their graph must not change them
    cached = pipe.encode_prompt(specs[0].prompt).prompt_embeds.clone()
    pipe._prompt_cache.clear()
    pipe.encode_prompt("another prompt")
    pipe._prompt_cache.clear()
    assert torch.equal(pipe.encode_prompt(specs[0].prompt).prompt_embeds, cached)
    restore(pipe)
    assert pipe.hooks.call_graphs is None


@needs_cuda
def test_replays_read_each_steps_modulation_row():
    """The graphed InfuseNet and backbone calls take the step's row as an input: replays must give the
    images that the same pipeline makes without graphs, bitwise (a replay reading a stale row would not)."""
    pipe = InfiniteYouPipeline(build_tiny_bundle(device="cuda"))
    reference = tiny_reference()
    specs = [tiny_spec(backbone="dev", steps=3, guidance=3.5), tiny_spec(backbone="schnell", steps=2, guidance=0.0)]
    options = dict(compile=False, cudnn_attention=False, vae=False)

    def images():
        out = []
        for spec in specs:
            pipe.clear_caches()
            out.append(np.asarray(pipe(spec, reference).image))
        return out

    accelerate(pipe, "lossless", cuda_graphs=False, **options)
    assert "step_modulation" in pipe.acceleration["techniques"]
    without_graphs = images()
    restore(pipe)
    accelerate(pipe, "lossless", cuda_graphs=True, **options)
    captured, replayed = images(), images()
    for a, b, c in zip(without_graphs, captured, replayed):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    restore(pipe)


@needs_cuda
def test_a_call_that_cannot_be_captured_is_named_with_the_way_out():
    graphs = CallGraphs("cuda", warmup_calls=1)
    x = torch.arange(4.0, device="cuda")
    graphs.eager_calls.add("square")
    assert torch.equal(graphs("square", lambda x: x * x, x=x), x * x)  # run without a graph
    assert graphs.stats()["graphs"] == 0 and graphs.stats()["eager_calls"] == ["square"]

    def host_sync(x):  # .item() copies to the host: not allowed while a stream is capturing
        return x * x.sum().item()

    with pytest.raises(GraphCaptureError, match=r"'sync' call failed .*cuda_graphs=False"):
        graphs("sync", host_sync, x=x)
