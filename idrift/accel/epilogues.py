"""FLUX's MLPs without their elementwise passes: `MlpEpilogues` (lossless; in the lossy mode, see below).

Every FLUX block (backbone and InfuseNet) has an MLP ``gelu_tanh(x W1^T + b1)``. Compiled, inductor runs
the product on cuBLAS and then reads the 12288-wide result back in an elementwise kernel for the GELU; in a
single block that kernel also writes the concatenation ``cat([attention, mlp])`` that `proj_out` reads
(a visible share of each single block's time under the profiler). Here:

* the GELU runs in the product's epilogue (cuBLASLt's GELU epilogue, the tanh form that FLUX uses:
  ``torch._addmm_activation(..., use_gelu=True)``; `linear_gelu_tanh`);
* a single block's `proj_out` takes the two halves of its input apart, ``attn W_a^T + b`` then
  ``+= mlp W_m^T``, so the concatenation is never written (`linear_of_concat`).

Both are custom ops, so inductor keeps them whole inside the compiled blocks instead of splitting the GELU
back out of the product. The same function computed differently: the GELU is applied to the fp32
accumulator before rounding to bf16 (less error than the reference's bf16 round trip), and `proj_out`'s two
partial products are summed through one bf16 rounding (slightly more). Both were faster at FLUX's shapes
in a microbenchmark and end to end in an interleaved A/B; the end-to-end figures of the lossless path are in
docs/performance.md.

In the lossy mode (fp8 `Fp8Linear` layers) a single block's `proj_out` input is quantised where it is made:
`gelu_cat_quantize` applies the GELU, takes each row's maximum over both halves and writes e4m3 in one pass
(a Triton kernel; inductor's code reads the 15360-wide rows twice), the same arithmetic as
`fp8.quantize_fp8` of the concatenation, and a little faster end to end. Other layers that are not
plain ``nn.Linear`` with a bias when called (the 8-bit memory mode's weight-only layers) run the model's
own code, so the order in which speed-ups are applied does not matter.

Example (tiny CPU model; on a CPU the ops compute the same function with ordinary kernels):
    >>> from idrift.models.tiny import build_tiny_bundle
    >>> model = build_tiny_bundle().backbone("schnell")
    >>> epilogues = MlpEpilogues()
    >>> counts = epilogues.install(model)
    >>> counts["feed_forward"] > 0 and counts["single_blocks"] > 0
    True
    >>> epilogues.uninstall()
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from idrift.accel.fp8 import FP8_MAX, Fp8Linear, quantize_fp8

try:
    import triton
    import triton.language as tl
    from triton.language.extra import libdevice
except ImportError:  # a CPU-only torch build: `gelu_cat_quantize` runs its torch form
    triton = None


@torch.library.custom_op("idrift::linear_gelu_tanh", mutates_args=())
def linear_gelu_tanh(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``gelu(F.linear(x, weight, bias), approximate="tanh")``, on CUDA with the GELU in the product's epilogue."""
    x2 = x.reshape(-1, x.shape[-1])
    if x.is_cuda:
        # cuBLASLt's GELU epilogue is the tanh form (checked on a GPU against both forms in float32: it is
        # two orders of magnitude closer to tanh than to erf). On a CPU `_addmm_activation` applies the erf
        # form, so it is not used there.
        out = torch._addmm_activation(bias, x2, weight.t(), use_gelu=True)
    else:
        out = F.gelu(F.linear(x2, weight, bias), approximate="tanh")
    return out.reshape(*x.shape[:-1], weight.shape[0])


@linear_gelu_tanh.register_fake
def _(x, weight, bias):
    return x.new_empty(*x.shape[:-1], weight.shape[0])


@torch.library.custom_op("idrift::linear_of_concat", mutates_args=())
def linear_of_concat(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.linear(torch.cat([a, b], -1), weight, bias)`` as two products into one output: no concatenation."""
    k = a.shape[-1]
    out = torch.addmm(bias, a.reshape(-1, k), weight[:, :k].t())
    out.addmm_(b.reshape(-1, b.shape[-1]), weight[:, k:].t())
    return out.reshape(*a.shape[:-1], weight.shape[0])


@linear_of_concat.register_fake
def _(a, b, weight, bias):
    return a.new_empty(*a.shape[:-1], weight.shape[0])


if triton is not None:
    @triton.jit
    def _gelu_cat_quantize_kernel(a_ptr, m_ptr, q_ptr, scale_ptr, fp8_max, KA: tl.constexpr, KM: tl.constexpr,
                                  BLOCK_A: tl.constexpr, BLOCK_M: tl.constexpr):
        # One program per row: the row stays in registers between its max and its quantisation (one read).
        row = tl.program_id(0).to(tl.int64)
        ca = tl.arange(0, BLOCK_A)
        cm = tl.arange(0, BLOCK_M)
        a = tl.load(a_ptr + row * KA + ca, mask=ca < KA, other=0.0).to(tl.float32)
        m = tl.load(m_ptr + row * KM + cm, mask=cm < KM, other=0.0).to(tl.float32)
        # PyTorch's tanh GELU on bf16: computed in float32, rounded to bf16
        g = 0.5 * m * (1.0 + libdevice.tanh(0.7978845608028654 * (m + 0.044715 * m * m * m)))
        g = g.to(m_ptr.dtype.element_ty).to(tl.float32)
        amax = tl.maximum(tl.max(tl.abs(a), axis=0), tl.max(tl.abs(g), axis=0))
        scale = tl.maximum(amax, 1e-12) / fp8_max
        qa = tl.minimum(tl.maximum(a / scale, -fp8_max), fp8_max)
        qg = tl.minimum(tl.maximum(g / scale, -fp8_max), fp8_max)
        tl.store(q_ptr + row * (KA + KM) + ca, qa.to(q_ptr.dtype.element_ty), mask=ca < KA)
        tl.store(q_ptr + row * (KA + KM) + KA + cm, qg.to(q_ptr.dtype.element_ty), mask=cm < KM)
        tl.store(scale_ptr + row, scale)


@torch.library.custom_op("idrift::gelu_cat_quantize", mutates_args=())
def gelu_cat_quantize(a: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``quantize_fp8(cat([a, gelu_tanh(m)], -1) as rows, dim=1)``: a single block's `proj_out` input in fp8
    (lossy mode), on CUDA in one pass over memory (inductor's code makes two: the rows' maxima, then the
    quantisation). Returns (rows, ka + km) e4m3 and (rows, 1) float32 scales."""
    ka, km = a.shape[-1], m.shape[-1]
    a2, m2 = a.reshape(-1, ka), m.reshape(-1, km)
    if triton is None or not a.is_cuda:
        return quantize_fp8(torch.cat([a2, F.gelu(m2, approximate="tanh")], dim=-1), dim=1)
    a2, m2 = a2.contiguous(), m2.contiguous()
    rows = a2.shape[0]
    q = torch.empty(rows, ka + km, device=a.device, dtype=torch.float8_e4m3fn)
    scale = torch.empty(rows, 1, device=a.device, dtype=torch.float32)
    _gelu_cat_quantize_kernel[(rows,)](a2, m2, q, scale, FP8_MAX, KA=ka, KM=km,
                                       BLOCK_A=triton.next_power_of_2(ka), BLOCK_M=triton.next_power_of_2(km),
                                       num_warps=16)
    return q, scale


@gelu_cat_quantize.register_fake
def _(a, m):
    rows = a.numel() // a.shape[-1]
    return (a.new_empty(rows, a.shape[-1] + m.shape[-1], dtype=torch.float8_e4m3fn),
            a.new_empty(rows, 1, dtype=torch.float32))


def _fp8_rowwise(linear: nn.Module) -> bool:
    return isinstance(linear, Fp8Linear) and linear.scaling == "rowwise"


def _plain(linear: nn.Module) -> bool:
    return type(linear) is nn.Linear and linear.bias is not None


class EpilogueGELU(nn.Module):
    """Stands in for diffusers' `GELU` activation module (its `proj` Linear, then tanh GELU). It takes the
    Linear over (the original keeps none, so an 8-bit conversion that replaces it frees its weights) and
    `MlpEpilogues.uninstall` hands it back."""

    def __init__(self, proj: nn.Linear):
        super().__init__()
        self.proj = proj  # the same Linear: fp8 and 8-bit conversions still find it by its name

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if _plain(self.proj):
            return linear_gelu_tanh(hidden_states, self.proj.weight, self.proj.bias)
        return F.gelu(self.proj(hidden_states), approximate="tanh")


def single_block_forward(self, hidden_states, encoder_hidden_states, temb, image_rotary_emb=None,
                         joint_attention_kwargs=None):
    """diffusers 0.42's `FluxSingleTransformerBlock.forward`, its MLP and `proj_out` through the ops above
    (tests compare it with the original)."""
    text_seq_len = encoder_hidden_states.shape[1]
    hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)

    residual = hidden_states
    norm_hidden_states, gate = self.norm(hidden_states, emb=temb)
    fused = _plain(self.proj_mlp) and _plain(self.proj_out)
    fp8 = not fused and _fp8_rowwise(self.proj_out)
    if fused:
        mlp_hidden_states = linear_gelu_tanh(norm_hidden_states, self.proj_mlp.weight, self.proj_mlp.bias)
    elif fp8:
        mlp_hidden_states = self.proj_mlp(norm_hidden_states)  # before its GELU: gelu_cat_quantize applies it
    else:
        mlp_hidden_states = self.act_mlp(self.proj_mlp(norm_hidden_states))
    joint_attention_kwargs = joint_attention_kwargs or {}
    attn_output = self.attn(hidden_states=norm_hidden_states, image_rotary_emb=image_rotary_emb,
                            **joint_attention_kwargs)

    if fused:
        projected = linear_of_concat(attn_output, mlp_hidden_states, self.proj_out.weight, self.proj_out.bias)
    elif fp8:
        projected = self.proj_out.product(*gelu_cat_quantize(attn_output, mlp_hidden_states))
        projected = projected.reshape(*attn_output.shape[:-1], projected.shape[-1])
    else:
        projected = self.proj_out(torch.cat([attn_output, mlp_hidden_states], dim=2))
    gate = gate.unsqueeze(1)
    hidden_states = gate * projected
    hidden_states = residual + hidden_states
    if hidden_states.dtype == torch.float16:
        hidden_states = hidden_states.clip(-65504, 65504)

    encoder_hidden_states, hidden_states = hidden_states[:, :text_seq_len], hidden_states[:, text_seq_len:]
    return encoder_hidden_states, hidden_states


def _tanh_gelu(module: nn.Module) -> bool:
    return isinstance(module, nn.GELU) and module.approximate == "tanh"


class MlpEpilogues:
    """Installs `EpilogueGELU` and `single_block_forward` in models, and takes them out again."""

    def __init__(self):
        self._gelu: list[tuple[nn.Module, str, nn.Module]] = []  # (parent, child name, original GELU module)
        self._blocks: list[nn.Module] = []

    def install(self, model: nn.Module) -> dict:
        """Replace the tanh-GELU MLP activations (whose Linear is a plain ``nn.Linear`` with a bias) and the
        single-block forwards (plain Linears, or an fp8 rowwise `proj_out`) of `model`; returns how many."""
        counts = {"feed_forward": 0, "single_blocks": 0}
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if (type(child).__name__ == "GELU" and type(child).__module__.startswith("diffusers.")
                        and getattr(child, "approximate", None) == "tanh" and _plain(child.proj)):
                    setattr(parent, name, EpilogueGELU(child.proj))
                    del child.proj
                    self._gelu.append((parent, name, child))
                    counts["feed_forward"] += 1
            if (type(parent).__name__ == "FluxSingleTransformerBlock" and "forward" not in vars(parent)
                    and _tanh_gelu(parent.act_mlp)
                    and ((_plain(parent.proj_mlp) and _plain(parent.proj_out)) or _fp8_rowwise(parent.proj_out))):
                parent.forward = types.MethodType(single_block_forward, parent)
                self._blocks.append(parent)
                counts["single_blocks"] += 1
        return counts

    def uninstall(self) -> None:
        """Put the original modules and forwards back."""
        for parent, name, original in self._gelu:
            original.proj = getattr(parent, name).proj  # converted to fp8 meanwhile, if it was
            setattr(parent, name, original)
        for block in self._blocks:
            del block.forward
        self._gelu.clear()
        self._blocks.clear()
