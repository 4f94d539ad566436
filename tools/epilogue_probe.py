"""GELU in the product's epilogue, at FLUX's MLP shapes, on one CUDA GPU: is it faster, and is it lossless?

FLUX's MLPs compute gelu_tanh(x W1^T + b1), and its single blocks then concatenate that (M x 12288) with the
attention output (M x 3072) before `proj_out`. Compiled, inductor writes the product, then reads it back in
one elementwise kernel for GELU (and, in single blocks, the concatenation): 98 us of a 440 us product in the
lossless profile (measurements/h100/lossless_profile_table.txt, `triton_poi_fused_cat_gelu_permute_view`).
cuBLASLt can apply GELU (tanh form) in the product's epilogue (`torch._addmm_activation(..., use_gelu=True)`).
Variants, each timed with CUDA events over many calls and compared with an fp32 computation of the same
function (relative L2 error, beside the compiled bf16 reference's own):

  single-block MLP + proj_out, M = 4400 (FLUX) and 3896 (InfuseNet: 8 identity tokens):
    compiled   the model's code compiled by inductor (what the lossless path runs now)
    split      GELU in the epilogue; proj_out split along its input: attn W2a^T + b2, then += h W2b^T
    slice      GELU in the epilogue written into the right columns of the concatenation buffer (out=)
  feed-forward (double blocks), M = 3888 / 512 / 8:
    compiled   as above
    epilogue   GELU in the first product's epilogue

    python tools/epilogue_probe.py out/epilogue_probe.json   # ~1 min on an H100
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

DIM, HIDDEN, HEADS = 3072, 12288, 24


def timed(fn, iters: int = 40, warmup: int = 5) -> float:
    """Median milliseconds of one call (CUDA events, after `warmup` calls); tools/fa4_probe.py uses it too."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref).norm() / ref.norm())


def gelu_form() -> dict:
    """Which GELU `_addmm_activation` applies on CUDA (float32, so the two forms differ far above rounding)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    x, w, b = (torch.randn(*s, generator=g).cuda() for s in ((256, 512), (512, 512), (512,)))
    torch.backends.cuda.matmul.allow_tf32 = False
    out = torch._addmm_activation(b, x, w.t(), use_gelu=True)
    pre = torch.addmm(b, x, w.t())
    return {"max_abs_vs_tanh": float((out - F.gelu(pre, approximate="tanh")).abs().max()),
            "max_abs_vs_erf": float((out - F.gelu(pre)).abs().max())}


def single_block(m: int, gen: torch.Generator) -> dict:
    dt = torch.bfloat16
    x = torch.randn(m, DIM, generator=gen).cuda().to(dt)
    attn_raw = torch.randn(HEADS, m, DIM // HEADS, generator=gen).cuda().to(dt)  # SDPA's (H, S, D) layout
    w1 = (torch.randn(HIDDEN, DIM, generator=gen) / DIM ** 0.5).cuda().to(dt)
    b1 = (torch.randn(HIDDEN, generator=gen) * 0.1).cuda().to(dt)
    w2 = (torch.randn(DIM, DIM + HIDDEN, generator=gen) / (DIM + HIDDEN) ** 0.5).cuda().to(dt)
    b2 = (torch.randn(DIM, generator=gen) * 0.1).cuda().to(dt)
    w2a_t, w2b_t = w2[:, :DIM].t(), w2[:, DIM:].t()

    def model(x, attn_raw):  # FluxSingleTransformerBlock's MLP branch and proj_out
        h = F.gelu(F.linear(x, w1, b1), approximate="tanh")
        a = attn_raw.transpose(0, 1).reshape(m, DIM)
        return F.linear(torch.cat([a, h], dim=1), w2, b2)

    compiled = torch.compile(model, fullgraph=True, dynamic=False)

    def split(x, attn_raw):
        h = torch._addmm_activation(b1, x, w1.t(), use_gelu=True)
        a = attn_raw.transpose(0, 1).reshape(m, DIM)
        out = torch.addmm(b2, a, w2a_t)
        return out.addmm_(h, w2b_t)

    def slice_out(x, attn_raw):
        buf = torch.empty(m, DIM + HIDDEN, device=x.device, dtype=x.dtype)
        torch._addmm_activation(b1, x, w1.t(), use_gelu=True, out=buf[:, DIM:])
        buf[:, :DIM].copy_(attn_raw.transpose(0, 1).reshape(m, DIM))
        return torch.addmm(b2, buf, w2.t())

    with torch.no_grad():
        h32 = F.gelu(F.linear(x.float(), w1.float(), b1.float()), approximate="tanh")
        ref = F.linear(torch.cat([attn_raw.float().transpose(0, 1).reshape(m, DIM), h32], 1), w2.float(), b2.float())
        out = {"M": m}
        for name, fn in (("compiled", compiled), ("split", split), ("slice", slice_out)):
            out[name] = {"ms": timed(lambda fn=fn: fn(x, attn_raw)), "rel_err_vs_fp32": rel(fn(x, attn_raw), ref)}
        out["products_alone_ms"] = timed(lambda: (torch.addmm(b1, x, w1.t()), torch.mm(x.new_empty(m, DIM + HIDDEN), w2.t())))
    return out


def feed_forward(m: int, gen: torch.Generator) -> dict:
    dt = torch.bfloat16
    x = torch.randn(m, DIM, generator=gen).cuda().to(dt)
    w1 = (torch.randn(HIDDEN, DIM, generator=gen) / DIM ** 0.5).cuda().to(dt)
    b1 = (torch.randn(HIDDEN, generator=gen) * 0.1).cuda().to(dt)
    w2 = (torch.randn(DIM, HIDDEN, generator=gen) / HIDDEN ** 0.5).cuda().to(dt)
    b2 = (torch.randn(DIM, generator=gen) * 0.1).cuda().to(dt)

    def model(x):  # diffusers FeedForward with activation "gelu-approximate"
        return F.linear(F.gelu(F.linear(x, w1, b1), approximate="tanh"), w2, b2)

    compiled = torch.compile(model, fullgraph=True, dynamic=False)

    def epilogue(x):
        return F.linear(torch._addmm_activation(b1, x, w1.t(), use_gelu=True), w2, b2)

    with torch.no_grad():
        ref = F.linear(F.gelu(F.linear(x.float(), w1.float(), b1.float()), approximate="tanh"), w2.float(), b2.float())
        out = {"M": m}
        for name, fn in (("compiled", compiled), ("epilogue", epilogue)):
            out[name] = {"ms": timed(lambda fn=fn: fn(x)), "rel_err_vs_fp32": rel(fn(x), ref)}
    return out


def main(path: Path) -> None:
    gen = torch.Generator(device="cpu").manual_seed(1)
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "gelu_form": gelu_form()}
    torch.backends.cuda.matmul.allow_tf32 = True
    result["single_block"] = [single_block(m, gen) for m in (4400, 3896)]
    result["feed_forward"] = [feed_forward(m, gen) for m in (3888, 512, 8)]
    print(json.dumps(result, indent=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/epilogue_probe.json"))
