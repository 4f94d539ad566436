"""idrift.accel.fast on the tiny CPU profile: what can run here runs, and matches the eager pipeline;
what needs a GPU (fp8, cuDNN attention, inductor by default) is skipped cleanly or refused with a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_runs import pixels, tiny_spec
from torch import nn

from idrift.accel.fast import AccelerationError, accelerate, provenance, require_lossless, restore, warm_up
from idrift.accel.fp8 import Fp8Linear, quantize_fp8
from idrift.config import RunSpec


def spec(**changes) -> RunSpec:
    return tiny_spec(**{"backbone": "schnell", "steps": 2, "guidance": 0.0, **changes})


def test_lossless_on_cpu_skips_compile_and_keeps_the_image(pipe, reference):
    before = pixels(pipe(spec(), reference))
    report = accelerate(pipe, "lossless")
    assert report["mode"] == "lossless" and report["lossy"] is False and report["label"] == "lossless"
    assert "compile" in report["skipped"] and "CUDA only" in report["skipped"]["compile"]
    assert "cudnn_sdpa" in report["skipped"]
    assert report["techniques"] == ["step_modulation", "mlp_epilogues", "vae_channels_last"]
    assert report["skipped"]["cuda_graphs"] == "no CUDA graphs on cpu"
    assert pipe.hooks.call_graphs is None
    after = pixels(pipe(spec(), reference))
    assert np.abs(after - before).max() <= 1  # channels_last convolutions: reassociation only
    assert restore(pipe)["mode"] == "eager"
    assert np.array_equal(pixels(pipe(spec(), reference)), before)


def test_regional_compile_captures_every_block_whole_and_matches_eager(pipe, reference):
    import torch._dynamo

    spec_dev = spec(backbone="dev", guidance=3.5)
    before = {s: pixels(pipe(s, reference)) for s in (spec(), spec_dev)}
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()  # the graph count below is this test's own
    report = accelerate(pipe, "lossless", compile=True, backend="aot_eager")
    assert "regional_compile" in report["techniques"] and "vae_compile" in report["techniques"]
    seconds = warm_up(pipe, spec(), reference)
    assert seconds > 0 and report["first_call_s"][0]["spec"] == spec().config_label
    for s, image in before.items():  # dev is built after accelerate(): the bundle compiles it too
        assert np.abs(pixels(pipe(s, reference)) - image).max() <= 2
    tiny = pipe.bundle
    n_blocks = sum(len(m.transformer_blocks) + len(m.single_transformer_blocks)
                   for m in (tiny.backbone("dev"), tiny.backbone("schnell"), tiny.infusenet))
    assert report["transformed"]["blocks"] == n_blocks
    compiled = [m for m in tiny.backbone("dev").modules() if getattr(m, "_compiled_call_impl", None) is not None]
    assert len(compiled) == (len(tiny.backbone("dev").transformer_blocks)
                             + len(tiny.backbone("dev").single_transformer_blocks))
    # fullgraph=True: a graph break would have raised. Blocks of one class share their graphs: a few
    # graphs per (class, shape), not one per block.
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert graphs < n_blocks, f"{graphs} graphs for {n_blocks} blocks: the blocks recompile one by one"
    restore(pipe)
    assert tiny.backbone_prepare == []  # backbones built from now on are left eager
    assert all(getattr(m, "_compiled_call_impl", None) is None for m in tiny.backbone("dev").modules())
    assert np.array_equal(pixels(pipe(spec(), reference)), before[spec()])
    torch._dynamo.reset()


def test_lossy_needs_a_gpu_and_says_so(pipe):
    with pytest.raises(AccelerationError, match="CUDA GPU with fp8"):
        accelerate(pipe, "lossy")
    with pytest.raises(AccelerationError, match="mode must be one of"):
        accelerate(pipe, "fast")
    assert getattr(pipe, "acceleration", None) is None  # nothing half-applied


def test_lossy_without_fp8_runs_and_is_labelled_lossy(pipe, reference):
    report = accelerate(pipe, "lossy", fp8=False)
    assert report["lossy"] is True and report["label"] == "lossy" and report["skipped"]["fp8"] == "fp8=False"
    assert provenance(pipe)["label"] == "lossy"
    with pytest.raises(AccelerationError, match="lossless pipeline"):
        require_lossless(pipe)
    with pytest.raises(AccelerationError, match="already accelerated"):
        accelerate(pipe, "lossless")
    pipe(spec(), reference)


def test_provenance_of_an_eager_and_a_lossless_pipeline(pipe):
    assert provenance(pipe) == {"mode": "eager", "lossy": False, "label": "eager", "techniques": []}
    accelerate(pipe, "lossless")
    prov = provenance(pipe)
    assert prov["label"] == "lossless" and prov["lossy"] is False
    require_lossless(pipe)  # no error
    with pytest.raises(AccelerationError, match="already accelerated"):
        accelerate(pipe, "lossless")


@pytest.mark.parametrize("scaling,tolerance", [("rowwise", 0.05), ("tensorwise", 0.08)])
def test_fp8_linear_is_close_to_the_bf16_layer(scaling, tolerance):
    gen = torch.Generator().manual_seed(0)
    lin = nn.Linear(256, 192)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(192, 256, generator=gen) * torch.linspace(0.01, 1, 192)[:, None])
    x = torch.randn(3, 17, 256, generator=gen)
    fp8 = Fp8Linear.from_linear(lin, scaling)
    with torch.no_grad():
        out, ref = fp8(x), lin(x)
    assert out.shape == ref.shape == (3, 17, 192) and out.dtype == ref.dtype
    assert fp8.weight.dtype == torch.float8_e4m3fn and fp8.weight.shape == (192, 256)
    err = float((out - ref).norm() / ref.norm())
    assert 0 < err < tolerance  # lossy, but only by e4m3 rounding (3 mantissa bits)


def test_fp8_quantisation_round_trips_within_e4m3_precision():
    x = torch.randn(64, 128, generator=torch.Generator().manual_seed(1)) * 10
    q, scale = quantize_fp8(x, dim=1)
    assert scale.shape == (64, 1) and q.dtype == torch.float8_e4m3fn
    back = q.float() * scale
    assert torch.all((back - x).abs() <= x.abs() * 2 ** -3 + scale * 2 ** -9)  # half an ulp of a 3-bit mantissa
    assert torch.allclose(back.abs().amax(dim=1), x.abs().amax(dim=1))  # the row maximum is exact


def test_fp8_linear_rejects_an_unknown_scaling():
    with pytest.raises(ValueError, match="rowwise"):
        Fp8Linear.from_linear(nn.Linear(32, 32), "blockwise")

