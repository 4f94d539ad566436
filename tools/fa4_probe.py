"""FlashAttention-4's CuTe-DSL forward (Hopper path) against cuDNN attention at FLUX's shape, one CUDA GPU.

No wheel of FlashAttention-3 exists for this torch/CUDA, and its sources are not reachable from our machines;
the CuTe-DSL kernels of flash-attn 2.8.3's sdist (`flash_attn/cute`, "for Hopper and Blackwell") need only
`nvidia-cutlass-dsl==4.1.0` (a 58 MB wheel). This probe imports them from a folder (FA4_PATH: one holding
`flash_attn/cute` and an empty `flash_attn/__init__.py`), times a forward at 864x1152's 4400 tokens, 24
heads of 128, bf16, against PyTorch's cuDNN SDPA on the same (batch, tokens, heads, dim) tensors, and
compares both with an fp32 reference.

    FA4_PATH=.fa4 python tools/fa4_probe.py out/fa4_probe.json
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F
from epilogue_probe import timed  # tools/ is on sys.path when a tool runs as a script
from torch.nn.attention import SDPBackend, sdpa_kernel


def main(path: Path) -> None:
    result: dict = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    gen = torch.Generator().manual_seed(0)
    for tokens in (4400, 3896):
        q, k, v = (torch.randn(1, tokens, 24, 128, generator=gen).cuda().bfloat16() for _ in range(3))
        flops = 4 * tokens * tokens * 128 * 24
        ref = F.scaled_dot_product_attention(*(t.float().transpose(1, 2) for t in (q, k, v))).transpose(1, 2)
        row: dict = {"tokens": tokens}
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            def cudnn():
                return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
            row["cudnn_ms"] = timed(cudnn, iters=30, warmup=3)
            row["cudnn_rel_err"] = float((cudnn().float() - ref).norm() / ref.norm())
        try:
            sys.path.insert(0, os.environ.get("FA4_PATH", ".fa4"))
            from flash_attn.cute.interface import flash_attn_func

            def fa4():
                out = flash_attn_func(q, k, v)
                return out[0] if isinstance(out, tuple) else out
            fa4()  # compiles the kernel (CuTe DSL, JIT)
            row["fa4_ms"] = timed(fa4, iters=30, warmup=3)
            row["fa4_rel_err"] = float((fa4().float() - ref).norm() / ref.norm())
        except Exception as exc:  # a probe: record why, keep the cuDNN figures
            row["fa4_error"] = "".join(traceback.format_exception(exc))[-3000:]
        for name in ("cudnn", "fa4"):
            if f"{name}_ms" in row:
                row[f"{name}_tflops"] = flops / row[f"{name}_ms"] / 1e9
        result[str(tokens)] = row
        print(json.dumps(row, indent=1), flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/fa4_probe.json"))
