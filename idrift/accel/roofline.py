"""How fast a denoising step could be on this GPU: its FLOPs over the rates the GPU measures.

`step_flops` counts one step (InfuseNet, then the backbone) with `torch.utils.flop_counter` on
meta-device copies of the two models built from their configs: no weights, no memory, the shapes of
the real call (`bundle_step_flops` takes them from a bundle and an image size). It splits them into
matrix products (Linear layers) and attention (the batched products inside scaled-dot-product
attention). `measure_rates(device)` times a bf16 product, an fp8 `_scaled_mm` product (sm_89+) and
attention at the step's head shape.
`step_floor_s` divides one by the other: the seconds a step would take if every product ran at the
measured rate and every other kernel (norms, RoPE, activations) were free. benchmarks/test_speed.py
reports it beside each fast path, so a target can be judged against what the card can do.

Example (CPU, tiny models):
    >>> from idrift.models.tiny import build_tiny_bundle
    >>> flops = bundle_step_flops(build_tiny_bundle(), "schnell", width=64, height=64)
    >>> flops["matmul"] > flops["attention"] > 0
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

MATMUL_OPS = ("mm", "addmm", "_scaled_mm")
ATTENTION_OPS = ("bmm", "baddbmm", "_scaled_dot_product")  # prefixes; FLUX uses bmm only inside attention


def _meta_copy(model: torch.nn.Module) -> torch.nn.Module:
    with torch.device("meta"):
        return type(model).from_config(model.config).to(torch.bfloat16)


def _kind(op_name: str) -> str:
    name = op_name.removeprefix("aten.")
    if name in MATMUL_OPS:
        return "matmul"
    if name.startswith(ATTENTION_OPS):
        return "attention"
    return "other"


def step_flops(backbone: torch.nn.Module, infusenet: torch.nn.Module, *, image_tokens: int, text_tokens: int,
               id_tokens: int, batch: int = 1) -> dict[str, float]:
    """FLOPs of one denoising step, InfuseNet's call and then the backbone's, as {"matmul", "attention",
    "other", "total"}. The models are only read for their class and config (meta copies run the step)."""
    flux, infusenet = _meta_copy(backbone), _meta_copy(infusenet)

    def meta(*shape, dtype=torch.bfloat16):
        return torch.zeros(*shape, device="meta", dtype=dtype)

    common = dict(hidden_states=meta(batch, image_tokens, flux.config.in_channels), timestep=meta(batch),
                  img_ids=meta(image_tokens, 3), pooled_projections=meta(batch, flux.config.pooled_projection_dim),
                  return_dict=False)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        blocks, singles = infusenet(**common, controlnet_cond=meta(batch, image_tokens, infusenet.config.in_channels),
                                    conditioning_scale=1.0, txt_ids=meta(id_tokens, 3),
                                    encoder_hidden_states=meta(batch, id_tokens, infusenet.config.joint_attention_dim),
                                    guidance=(meta(batch, dtype=torch.float32)
                                              if infusenet.config.guidance_embeds else None))
        flux(**common, encoder_hidden_states=meta(batch, text_tokens, flux.config.joint_attention_dim),
             txt_ids=meta(text_tokens, 3), controlnet_block_samples=blocks, controlnet_single_block_samples=singles,
             guidance=meta(batch, dtype=torch.float32) if flux.config.guidance_embeds else None)
    out = {"matmul": 0.0, "attention": 0.0, "other": 0.0}
    for op, flops in counter.get_flop_counts()["Global"].items():
        out[_kind(str(op))] += float(flops)
    out["total"] = sum(out.values())
    return out


def bundle_step_flops(bundle, backbone: str, width: int, height: int, batch: int = 1) -> dict[str, float]:
    """`step_flops` of the bundle's `backbone` ("dev"/"schnell") and InfuseNet at width x height, with the
    bundle's text length and identity-token count; also returns the token counts."""
    scale = 2 ** (len(bundle.vae.config.block_out_channels) - 1) * 2  # VAE downsampling x FLUX's 2x2 patches
    tokens = dict(image_tokens=(height // scale) * (width // scale), text_tokens=bundle.max_sequence_length,
                  id_tokens=bundle.image_proj.config["num_queries"])
    return {**step_flops(bundle.backbone(backbone), bundle.infusenet, batch=batch, **tokens), **tokens}


def _rate(fn: Callable[[], object], flops: float, device: torch.device, repeat: int) -> float:
    """FLOP/s of `fn` (one warm-up call, then `repeat` timed calls)."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return flops * repeat / (time.perf_counter() - start)


@torch.no_grad()
def measure_rates(device: str | torch.device, *, size: int = 8192, tokens: int = 4400, heads: int = 24,
                  head_dim: int = 128, repeat: int = 20) -> dict[str, float | None]:
    """FLOP/s on `device`: a size^3 bf16 product, the same as an fp8 e4m3 `_scaled_mm` with rowwise scales and
    fast accumulation as `fp8.Fp8Linear` runs it (None off CUDA or below sm_89), and attention over `tokens`
    tokens with the current SDPA backend order. The defaults are FLUX's at 864x1152 (512 text + 3,888 image
    tokens, 24 heads of 128)."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    q, k, v = (torch.randn(1, heads, tokens, head_dim, device=device, dtype=torch.bfloat16) for _ in range(3))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    rates: dict[str, float | None] = {
        "bf16_matmul": _rate(lambda: a @ b, 2 * size**3, device, repeat),
        "attention": _rate(lambda: sdpa(q, k, v), 4 * tokens**2 * head_dim * heads, device, repeat),
        "fp8_matmul": None,
    }
    if device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9):
        a8, b8 = a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn).t()
        sa, sb = torch.ones(size, 1, device=device), torch.ones(1, size, device=device)
        rates["fp8_matmul"] = _rate(lambda: torch._scaled_mm(a8, b8, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16,
                                                             use_fast_accum=True), 2 * size**3, device, repeat)
    rates.update(size=size, tokens=tokens, heads=heads, head_dim=head_dim)
    return rates


def step_floor_s(flops: dict, rates: dict, matmul: str = "bf16_matmul") -> float:
    """Seconds of one step with its products at `rates[matmul]`, attention at `rates["attention"]` and
    everything else free."""
    if rates.get(matmul) is None:
        raise ValueError(f"step_floor_s: no {matmul} rate measured on this device ({rates})")
    return flops["matmul"] / rates[matmul] + flops["attention"] / rates["attention"]
