"""Query/key RMSNorm + concatenation + rotary embedding at FLUX's shapes on one CUDA GPU: the model's code
compiled by inductor (what the lossless path ran before) against `idrift.pipeline.qk_norm_rope`'s Triton
kernel, both followed by cuDNN attention as in the model (so that a layout copy before attention counts).

    python tools/qk_norm_rope_probe.py out/qk_norm_rope_probe.json   # ~1 min on an H100
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import apply_rotary_emb
from torch.nn.attention import SDPBackend, sdpa_kernel

from idrift.pipeline.qk_norm_rope import qk_norm_rope

HEADS, DIM = 24, 128


def timed(fn, iters: int = 50) -> float:
    for _ in range(5):
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


def model_code(text, image, text_weight, image_weight, cos, sin, eps):
    parts = ([] if text is None else [(text, text_weight)]) + [(image, image_weight)]
    normed = torch.cat([F.rms_norm(p, (DIM,), w, eps) for p, w in parts], dim=1)
    return apply_rotary_emb(normed, (cos, sin), sequence_dim=1)


def case(text_tokens: int, image_tokens: int, gen: torch.Generator) -> dict:
    dt = torch.bfloat16
    qkv = [(torch.randn(1, n, HEADS, DIM, generator=gen) * 2).cuda().to(dt) for n in (text_tokens, image_tokens)
           for _ in range(3)]
    tq, tk, tv, iq, ik, iv = qkv
    w = [(1 + 0.1 * torch.randn(DIM, generator=gen)).cuda().to(dt) for _ in range(4)]
    angles = torch.rand(text_tokens + image_tokens, DIM // 2, generator=gen) * 6.3
    cos, sin = (f(angles).repeat_interleave(2, dim=1).cuda() for f in (torch.cos, torch.sin))
    single = text_tokens == 0

    def attention(norm_rope):
        def fn(tq, tk, tv, iq, ik, iv):
            q = norm_rope(None if single else tq, iq, None if single else w[0], w[1], cos, sin, 1e-6)
            k = norm_rope(None if single else tk, ik, None if single else w[2], w[3], cos, sin, 1e-6)
            v = iv if single else torch.cat([tv, iv], dim=1)
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            return o.transpose(1, 2).flatten(2, 3)
        return torch.compile(fn, fullgraph=True, dynamic=False)

    variants = {"compiled model code": attention(model_code), "triton kernel": attention(qk_norm_rope)}
    out = {"text_tokens": text_tokens, "image_tokens": image_tokens}
    with torch.no_grad(), sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
        results = {}
        for name, fn in variants.items():
            out[name + " + attention ms"] = timed(lambda fn=fn: fn(*qkv))
            results[name] = fn(*qkv).float()
        norm_only = {"compiled model code": torch.compile(model_code, fullgraph=True, dynamic=False),
                     "triton kernel": qk_norm_rope}
        args = (None if single else tq, iq, None if single else w[0], w[1], cos, sin, 1e-6)
        for name, fn in norm_only.items():
            out[name + " alone (queries) ms"] = timed(lambda fn=fn: fn(*args))
        a, b = results["compiled model code"], results["triton kernel"]
        out["attention output rel. diff"] = float((a - b).norm() / a.norm())
    return out


def main(path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
              "cases": [case(t, i, gen) for t, i in ((0, 4400), (512, 3888), (8, 3888), (0, 3896))]}
    print(json.dumps(result, indent=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/qk_norm_rope_probe.json"))
