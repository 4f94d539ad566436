"""fp8 building blocks for the lossy fast path, timed on one CUDA GPU at FLUX's 864x1152 shapes.

1. Linear layers (4400 tokens): bf16 `nn.Linear` against `Fp8Linear` variants (bias added after the
   product / inside `torch._scaled_mm`'s epilogue, with and without fast accumulation) and torchao's
   float8 dynamic rowwise quantisation when it is installed; each compiled together with the
   modulation that precedes it in a block (x * (1 + scale) + shift), as inductor sees it there.
2. Attention (24 heads of 128, 4400 tokens, laid out as diffusers passes them): cuDNN bf16 through
   SDPA against cuDNN's fp8 SDPA through the cuDNN frontend (`nvidia-cudnn-frontend`), counting the
   per-tensor quantisation of q, k, v and the fp8 output's conversion back to bf16.
3. Optionally (``profile``) where a schnell-4 image spends its GPU time (``--mode lossy`` or
   ``lossless``), without CUDA graphs so that the profiler sees each kernel.

A measuring script behind the README's "Fast paths" decisions, not a test.

    python tools/fp8_probe.py out/fp8_probe.json [--parts attention linear profile] [--mode lossless]   # ~2 min on an H100 (+3 min profile)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from idrift.pipeline.fast import FP8_MAX, Fp8Linear, quantize_fp8  # noqa: E402

TOKENS = 4400  # 512 text + 3888 image tokens at 864x1152
LINEAR_SHAPES = ((3072, 3072), (3072, 12288), (12288, 3072), (15360, 3072))  # (in, out)


def cuda_ms(fn, iters: int = 50) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


class Fp8LinearVariant(Fp8Linear):
    """`Fp8Linear`'s rowwise product with the two choices it makes on CUDA spelled out, so that each can be
    timed apart: the bias in `_scaled_mm`'s epilogue or added after, fast accumulation or not."""

    def __init__(self, *args, epilogue: bool, fast_accum: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.epilogue, self.fast_accum = epilogue, fast_accum

    @classmethod
    def of(cls, linear: nn.Linear, *, epilogue: bool, fast_accum: bool) -> Fp8LinearVariant:
        base = Fp8Linear.from_linear(linear, "rowwise")
        return cls(base.weight, base.weight_scale, base.bias, base.out_dtype, base.scaling, epilogue=epilogue,
                   fast_accum=fast_accum)

    def forward(self, x):
        lead = x.shape[:-1]
        xq, xs = quantize_fp8(x.reshape(-1, self.in_features), dim=1)
        out = torch._scaled_mm(xq, self.weight.t(), scale_a=xs, scale_b=self.weight_scale,
                               bias=self.bias if self.epilogue else None, out_dtype=self.out_dtype,
                               use_fast_accum=self.fast_accum)
        if not self.epilogue and self.bias is not None:
            out = out + self.bias
        return out.reshape(*lead, self.out_features)


def linear_rows() -> list[dict]:
    rows = []
    for k, n in LINEAR_SHAPES:
        lin = nn.Linear(k, n, device="cuda", dtype=torch.bfloat16)
        x = torch.randn(1, TOKENS, k, device="cuda", dtype=torch.bfloat16)
        scale, shift = (torch.randn(1, 1, k, device="cuda", dtype=torch.bfloat16) * 0.1 for _ in range(2))
        variants = {
            "bf16": lin,
            "fp8 rowwise, bias after": Fp8LinearVariant.of(lin, epilogue=False, fast_accum=False),
            "fp8 rowwise, bias in epilogue": Fp8LinearVariant.of(lin, epilogue=True, fast_accum=False),
            "fp8 rowwise, bias in epilogue, fast accum": Fp8LinearVariant.of(lin, epilogue=True, fast_accum=True),
            "idrift Fp8Linear (the last, at 4400 rows)": Fp8Linear.from_linear(lin),
        }
        try:
            import copy

            from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

            ao = nn.Sequential(copy.deepcopy(lin))
            quantize_(ao, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
            variants["torchao float8 dynamic rowwise"] = ao
        except Exception as exc:  # not installed, or this torch is too new/old for it
            rows.append({"shape": [TOKENS, k, n], "variant": "torchao", "error": repr(exc)[:300]})
        with torch.no_grad():
            ref = lin(x * (1 + scale) + shift).float()
            for name, layer in variants.items():
                torch._dynamo.reset()
                fn = torch.compile(lambda x, layer=layer: layer(x * (1 + scale) + shift), fullgraph=True)
                try:
                    out = fn(x).float()
                    ms = cuda_ms(lambda fn=fn: fn(x))
                except Exception as exc:
                    rows.append({"shape": [TOKENS, k, n], "variant": name, "error": repr(exc)[:300]})
                    continue
                flops = 2 * TOKENS * k * n
                rows.append({"shape": [TOKENS, k, n], "variant": name, "ms": ms, "tflops": flops / ms / 1e9,
                             "rel_error_vs_bf16": float((out - ref).norm() / ref.norm())})
                print(rows[-1], flush=True)
    return rows


def _quantize_per_tensor(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """bf16 -> (e4m3 in the same strides, descale (1,1,1,1) float32) with a power-of-two scale."""
    amax = x.abs().amax().float().clamp_min(1e-8)
    multiplier = torch.exp2(torch.floor(torch.log2(FP8_MAX / amax)))
    return (x.float() * multiplier).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), multiplier.reciprocal().reshape(1, 1, 1, 1)


def attention_rows() -> list[dict]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    heads, dim = 24, 128
    # diffusers' layout: (B, S, H, D) memory viewed as (B, H, S, D)
    q, k, v = (torch.randn(1, TOKENS, heads, dim, device="cuda", dtype=torch.bfloat16).permute(0, 2, 1, 3)
               for _ in range(3))
    flops = 4 * TOKENS * TOKENS * dim * heads
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    rows = []
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        ms = cuda_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    rows.append({"variant": "cuDNN bf16 (SDPA)", "ms": ms, "tflops": flops / ms / 1e9,
                 "rel_error_vs_fp32": float((out.float() - ref).norm() / ref.norm())})
    print(rows[-1], flush=True)
    try:
        import cudnn
    except Exception as exc:
        return rows + [{"variant": "cuDNN fp8", "error": f"cudnn frontend not importable: {exc!r}"[:300]}]
    try:
        handle = cudnn.create_handle()
        cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream().cuda_stream)
        e4m3, fp32 = cudnn.data_type.FP8_E4M3, cudnn.data_type.FLOAT
        graph = cudnn.pygraph(io_data_type=e4m3, intermediate_data_type=fp32, compute_data_type=fp32, handle=handle)
        shape, stride = list(q.shape), list(q.stride())
        tq, tk, tv = (graph.tensor(name=n, dim=shape, stride=stride, data_type=e4m3) for n in "qkv")
        scalars = [graph.tensor(name=n, dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=fp32)
                   for n in ("descale_q", "descale_k", "descale_v", "descale_s", "scale_s", "scale_o")]
        to, _, amax_s, amax_o = graph.sdpa_fp8(q=tq, k=tk, v=tv, descale_q=scalars[0], descale_k=scalars[1],
                                               descale_v=scalars[2], descale_s=scalars[3], scale_s=scalars[4],
                                               scale_o=scalars[5], is_inference=True, attn_scale=1 / math.sqrt(dim),
                                               use_causal_mask=False, name="sdpa_fp8")
        to.set_output(True).set_dim(shape).set_stride(stride).set_data_type(e4m3)  # Hopper: fp8 out only
        for amax in (amax_s, amax_o):
            amax.set_output(True).set_dim([1, 1, 1, 1]).set_stride([1, 1, 1, 1]).set_data_type(fp32)
        graph.validate()
        graph.build_operation_graph()
        graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        graph.check_support()
        graph.build_plans()
        workspace = torch.empty(graph.get_workspace_size(), dtype=torch.uint8, device="cuda")
    except Exception as exc:
        return rows + [{"variant": "cuDNN fp8", "error": repr(exc)[:600]}]
    # softmax probabilities are in [0, 1]: a fixed scale; the output is a convex mix of v's rows, so v's
    # amax bounds it and v's scale serves the output too.
    scale_s = torch.full((1, 1, 1, 1), 256.0, device="cuda")
    descale_s = scale_s.reciprocal()
    buffers = {"o": torch.empty(1, TOKENS, heads, dim, device="cuda", dtype=torch.float8_e4m3fn).permute(0, 2, 1, 3),
               "amax_s": torch.empty(1, 1, 1, 1, device="cuda"), "amax_o": torch.empty(1, 1, 1, 1, device="cuda")}

    def kernel_only(q8, k8, v8, dq, dk, dv, scale_o):
        graph.execute({tq: q8, tk: k8, tv: v8, scalars[0]: dq, scalars[1]: dk, scalars[2]: dv, scalars[3]: descale_s,
                       scalars[4]: scale_s, scalars[5]: scale_o, to: buffers["o"], amax_s: buffers["amax_s"],
                       amax_o: buffers["amax_o"]}, workspace, handle=handle)
        return buffers["o"]

    quantized = [_quantize_per_tensor(t) for t in (q, k, v)]
    (q8, dq), (k8, dk), (v8, dv) = quantized
    scale_o = dv.reciprocal()

    def full():
        (q8, dq), (k8, dk), (v8, dv) = [_quantize_per_tensor(t) for t in (q, k, v)]
        return (kernel_only(q8, k8, v8, dq, dk, dv, dv.reciprocal()).float() * dv).to(torch.bfloat16)

    try:
        ms_kernel = cuda_ms(lambda: kernel_only(q8, k8, v8, dq, dk, dv, scale_o))
        out8 = full()
        ms_full = cuda_ms(full)
        compiled_quant = torch.compile(_quantize_per_tensor)
        ms_quant = cuda_ms(lambda: [compiled_quant(t) for t in (q, k, v)])
    except Exception as exc:
        return rows + [{"variant": "cuDNN fp8", "error": repr(exc)[:600]}]
    rows.append({"variant": "cuDNN fp8 (frontend), kernel", "ms": ms_kernel, "tflops": flops / ms_kernel / 1e9,
                 "cudnn_backend": cudnn.backend_version_string(), "frontend": getattr(cudnn, "__version__", None)})
    rows.append({"variant": "cuDNN fp8, with eager quantisation and bf16 output", "ms": ms_full,
                 "rel_error_vs_fp32": float((out8.float() - ref).norm() / ref.norm())})
    rows.append({"variant": "q, k, v per-tensor quantisation alone (compiled)", "ms": ms_quant})
    for row in rows[-3:]:
        print(row, flush=True)
    return rows


def image_profile(out: Path, mode: str) -> dict:
    from torch.profiler import ProfilerActivity, profile

    from idrift.models.synthetic import build_synthetic_bundle
    from idrift.pipeline.fast import accelerate
    from idrift.pipeline.infinite_you import InfiniteYouPipeline

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from memory_24gb import latency_specs, synthetic_reference

    bundle = build_synthetic_bundle(device="cuda")
    pipe = InfiniteYouPipeline(bundle)
    spec = latency_specs("synthetic", bundle.fingerprint)["schnell-4"]
    reference = synthetic_reference()
    accelerate(pipe, mode, cuda_graphs=False)
    for _ in range(2):
        pipe.clear_caches()
        pipe(spec, reference)
    torch.cuda.synchronize()
    pipe.clear_caches()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        pipe(spec, reference)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=40, max_name_column_width=90)
    out.with_name(f"{out.stem}_{mode}_profile.txt").write_text(table)
    kernels: dict[str, float] = {}
    for event in prof.events():
        if event.device_type.name == "CUDA":
            kernels[event.name] = kernels.get(event.name, 0.0) + event.device_time / 1e3
    categories: dict[str, float] = {}
    for name, ms in kernels.items():
        categories[kernel_category(name)] = categories.get(kernel_category(name), 0.0) + ms
    return {"mode": mode, "wall_s_with_profiler": wall, "gpu_kernel_ms": sum(kernels.values()), "categories_ms": categories,
            "top_kernels_ms": dict(sorted(kernels.items(), key=lambda kv: -kv[1])[:30])}


def kernel_category(name: str) -> str:
    """A CUDA kernel's kind, from its name (cuBLAS/CUTLASS products, attention, inductor's fused kernels)."""
    lower = name.lower()
    if any(k in lower for k in ("nvjet", "gemm", "cutlass", "xmma", "scaled_mm")):
        return "products"
    if any(k in lower for k in ("flash", "fmha", "sdpa", "attention")):
        return "attention"
    if lower.startswith("triton"):  # inductor's: the ones with amax are the fp8 activation quantisation
        return "triton (amax: quantisation)" if "amax" in lower else "triton (other)"
    if "conv" in lower:
        return "convolution"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--parts", nargs="+", choices=("attention", "linear", "profile"), default=["attention", "linear"],
                        help="what to measure ('profile': a schnell-4 image under the profiler)")
    parser.add_argument("--mode", choices=("lossy", "lossless"), default="lossy", help="the fast path that 'profile' runs")
    args = parser.parse_args()
    results: dict = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                     "cudnn": torch.backends.cudnn.version()}
    parts = {"attention": attention_rows, "linear": linear_rows, "profile": lambda: image_profile(args.out, args.mode)}
    for part in args.parts:
        results[part] = parts[part]()
        args.out.write_text(json.dumps(results, indent=1))  # after each part: a cut run keeps what it measured


if __name__ == "__main__":
    main()
