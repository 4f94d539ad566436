"""What idrift.accel.fast measures and finds before it changes anything: inductor's on-disk compile cache,
the repeated blocks of a model and their large Linears, whether fp8 matmuls work on this GPU (and how
close they come to bf16), and whether cuDNN attention is as accurate as the flash kernel (each probe on
fresh random data, with the error it measured, so that the report can say why a technique was skipped).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from idrift.accel.fp8 import FP8_MIN_FEATURES, Fp8Linear

REPEATED_BLOCKS = ("FluxTransformerBlock", "FluxSingleTransformerBlock")


# ---- compile cache -------------------------------------------------------------------------------
def configure_compile_cache(cache_dir: str | os.PathLike | None = None) -> str:
    """Point inductor's on-disk caches at a persistent folder and turn them on; returns the folder.

    Precedence: `cache_dir`, then an existing ``TORCHINDUCTOR_CACHE_DIR``, then ``$IDRIFT_CACHE/inductor``,
    then ``~/.cache/idrift/inductor``. The FX-graph cache keys compiled graphs by graph, shapes, torch
    version and device, so a later run of the same blocks reuses them (no codegen, no Triton autotuning)."""
    if cache_dir is not None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir)
    elif "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        base = os.environ.get("IDRIFT_CACHE")
        folder = Path(base) / "inductor" if base else Path.home() / ".cache" / "idrift" / "inductor"
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    folder = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    os.makedirs(folder, exist_ok=True)
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    if hasattr(inductor_config, "autotune_local_cache"):
        inductor_config.autotune_local_cache = True
    return folder


def repeated_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks of `model` (FLUX's two block classes, or the model's own list)."""
    names = set(REPEATED_BLOCKS) | set(getattr(model, "_repeated_blocks", None) or ())
    return [m for m in model.modules() if type(m).__name__ in names]


def block_linears(block: nn.Module, min_features: int = FP8_MIN_FEATURES):
    """(parent, child name, Linear, many_tokens) for the large Linears of one block (both sides >=
    `min_features`, multiples of 16 as fp8 matmuls need). AdaLayerNorm projections ('norm' in the name)
    see one row, the timestep embedding: many_tokens False, an fp8 matmul would only add quantisation cost."""
    for name, module in block.named_modules():
        for child_name, child in module.named_children():
            full = f"{name}.{child_name}" if name else child_name
            if (type(child) is nn.Linear and min(child.in_features, child.out_features) >= min_features
                    and child.in_features % 16 == 0 and child.out_features % 16 == 0):
                yield module, child_name, child, "norm" not in full


def probe_scaled_mm(device: torch.device, dtype: torch.dtype) -> dict:
    """Which fp8 scaling works on this GPU, and its error against the bf16 product (fresh random data)."""
    gen = torch.Generator(device="cpu").manual_seed(1234)
    x = torch.randn(256, 1024, generator=gen).to(device, dtype)
    lin = nn.Linear(1024, 1024, device=device, dtype=dtype)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(1024, 1024, generator=gen).to(device, dtype) / 32)
        ref = lin(x).float()
    errors = {}
    for scaling in ("rowwise", "tensorwise"):
        try:
            with torch.no_grad():
                out = Fp8Linear.from_linear(lin, scaling)(x).float()
            torch.cuda.synchronize(device)
            errors[scaling] = float((out - ref).norm() / ref.norm())
        except RuntimeError as exc:  # e.g. rowwise scaling not supported by this build / GPU
            errors[scaling] = f"unsupported: {str(exc).splitlines()[0][:160]}"
    usable = [s for s in ("rowwise", "tensorwise") if isinstance(errors[s], float) and errors[s] < 0.1]
    return {"relative_error_vs_bf16": errors, "scaling": usable[0] if usable else None}


# ---- attention ---------------------------------------------------------------------------------
def _sdpa_error(backend, q, k, v, ref) -> float | str:
    from torch.nn.attention import sdpa_kernel

    try:
        with sdpa_kernel([backend]):
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v).float()
        return float((out - ref).norm() / ref.norm())
    except RuntimeError as exc:
        return f"unavailable: {str(exc).splitlines()[0][:160]}"


def _probe_cudnn_attention(device: torch.device, dtype: torch.dtype) -> dict:
    """cuDNN vs flash attention against an fp32 reference, at FLUX's head size, on fresh random data."""
    from torch.nn.attention import SDPBackend

    gen = torch.Generator(device="cpu").manual_seed(4321)
    # FLUX at 864x1152: 512 text + 3888 image tokens, 24 heads of 128, laid out as diffusers passes them
    # ((B, S, H, D) permuted to (B, H, S, D): not contiguous), so the probe takes the model's own path.
    q, k, v = (torch.randn(1, 4400, 24, 128, generator=gen).to(device, dtype).permute(0, 2, 1, 3) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    err = {"cudnn": _sdpa_error(SDPBackend.CUDNN_ATTENTION, q, k, v, ref),
           "flash": _sdpa_error(SDPBackend.FLASH_ATTENTION, q, k, v, ref)}
    flash = err["flash"] if isinstance(err["flash"], float) else 1e-2
    ok = isinstance(err["cudnn"], float) and err["cudnn"] <= max(2 * flash, 1e-3)
    return {"relative_error_vs_fp32": err, "within_bf16_noise": ok}


def _set_sdpa_priority(first) -> list[int]:
    previous = list(torch._C._get_sdp_priority_order())
    order = [int(first)] + [b for b in previous if b != int(first)]
    torch._C._set_sdp_priority_order(order)
    return previous
