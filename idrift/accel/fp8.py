"""fp8 (e4m3) matrix products: the quantiser and the Linear layer the lossy fast path and the 8-bit memory
mode swap in. Its own module so that the accelerator (`fast`), the fused epilogues and the memory modes
all import it without importing each other."""

from __future__ import annotations

import torch
from torch import nn

FP8_MAX = 448.0  # largest finite float8_e4m3fn
FP8_MIN_FEATURES = 1024  # smaller Linear layers gain nothing from fp8


def quantize_fp8(x: torch.Tensor, dim: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """x -> (x_fp8, scale) with x ~= x_fp8 * scale; one scale per slice along `dim` (None: one in all)."""
    amax = x.abs().amax() if dim is None else x.abs().amax(dim=dim, keepdim=True)
    scale = amax.float().clamp(min=1e-12) / FP8_MAX
    q = (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale


class Fp8Linear(nn.Module):
    """A frozen `nn.Linear` with e4m3 weights: y = (x_q * s_x) @ (w_q * s_w)^T + b.

    ``scaling="rowwise"``: one weight scale per output channel, one activation scale per row (token);
    ``"tensorwise"``: one scale each. On CUDA the product is `torch._scaled_mm` (fp8 tensor cores, Hopper's
    fast accumulation, bias in the epilogue, bf16 out); elsewhere it is emulated by dequantising (same
    numbers up to accumulation order), which lets CPU tests check the quantisation.
    """

    def __init__(self, weight_fp8: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
                 out_dtype: torch.dtype, scaling: str):
        super().__init__()
        self.out_features, self.in_features = weight_fp8.shape
        self.out_dtype = out_dtype
        self.scaling = scaling
        self.register_buffer("weight", weight_fp8)  # (out, in), row-major: .t() is the column-major mat2
        self.register_buffer("weight_scale", weight_scale)  # (1, out) rowwise, () tensorwise; float32
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, scaling: str = "rowwise") -> Fp8Linear:
        if scaling not in ("rowwise", "tensorwise"):
            raise ValueError(f"Fp8Linear scaling must be 'rowwise' or 'tensorwise', got {scaling!r}")
        w = linear.weight.detach()
        q, scale = quantize_fp8(w, dim=1 if scaling == "rowwise" else None)
        scale = scale.reshape(1, -1).contiguous() if scaling == "rowwise" else scale.reshape(())
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(q.contiguous(), scale, bias, w.dtype, scaling)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8=e4m3, scaling={self.scaling}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        xq, xs = quantize_fp8(x2, dim=1 if self.scaling == "rowwise" else None)
        return self.product(xq, xs).reshape(*x.shape[:-1], self.out_features)

    def product(self, xq: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """(rows, out) bf16 from activations already quantised as `quantize_fp8` does: (rows, in) e4m3 and
        their scales ((rows, 1) rowwise, () tensorwise). `epilogues.gelu_cat_quantize` calls it directly."""
        bias = self.bias
        if xq.is_cuda:
            # The bias in the product's epilogue, not a pass over the output, and fast accumulation: faster at
            # FLUX's shapes with the same error, and as fast as torchao's rowwise float8. Row counts off a
            # multiple of 16 keep the plain product: with InfuseNet's 8 identity tokens, cuBLASLt found no such
            # kernel under CUDA-graph capture (CUBLAS_STATUS_NOT_SUPPORTED).
            epilogue = xq.shape[0] % 16 == 0
            out = torch._scaled_mm(xq, self.weight.t(), scale_a=xs, scale_b=self.weight_scale,
                                   bias=bias if epilogue else None, out_dtype=self.out_dtype, use_fast_accum=epilogue)
            bias = None if epilogue else bias
        else:
            out = ((xq.float() * xs) @ (self.weight.float() * self.weight_scale.reshape(-1, 1)).t()).to(self.out_dtype)
        if bias is not None:
            out = out + bias
        return out
