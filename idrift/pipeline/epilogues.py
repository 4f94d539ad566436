"""FLUX's MLPs without their elementwise passes: `MlpEpilogues` (lossless).

Every FLUX block (backbone and InfuseNet) has an MLP ``gelu_tanh(x W1^T + b1)``. Compiled, inductor runs
the product on cuBLAS and then reads the 12288-wide result back in an elementwise kernel for the GELU; in a
single block that kernel also writes the concatenation ``cat([attention, mlp])`` that `proj_out` reads
(98 us of each single block's 1.1 ms on an H100: measurements/h100/lossless_profile_table.txt). Here:

* the GELU runs in the product's epilogue (cuBLASLt's GELU epilogue, the tanh form that FLUX uses:
  ``torch._addmm_activation(..., use_gelu=True)``; `linear_gelu_tanh`);
* a single block's `proj_out` takes the two halves of its input apart, ``attn W_a^T + b`` then
  ``+= mlp W_m^T``, so the concatenation is never written (`linear_of_concat`).

Both are custom ops, so inductor keeps them whole inside the compiled blocks instead of splitting the GELU
back out of the product. The same function computed differently: the GELU is applied to the fp32
accumulator before rounding to bf16 (less error than the reference's bf16 round trip), and `proj_out`'s two
partial products are summed through one bf16 rounding (slightly more). Microbenchmark at FLUX's shapes,
H100 (python tools/epilogue_probe.py OUT, measurements/h100/epilogue_probe.json): single block MLP +
proj_out 1.149 -> 1.057 ms (relative error vs fp32 0.00264 -> 0.00278), feed-forward 3888 rows 0.904 ->
0.821 ms, 512 rows 0.179 -> 0.129 ms (error 0.00306 -> 0.00235). End to end, interleaved on one H100
(python tools/fast_ab.py OUT epilogues): schnell-4 0.747 -> 0.728 s, dev-28 4.64 -> 4.52 s.

Layers that are not plain ``nn.Linear`` with a bias when called (fp8 in the lossy mode or the 8-bit memory
mode) run the model's own code, so the order in which speed-ups are applied does not matter.

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


@torch.library.custom_op("idrift::linear_gelu_tanh", mutates_args=())
def linear_gelu_tanh(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``gelu(F.linear(x, weight, bias), approximate="tanh")``, on CUDA with the GELU in the product's epilogue."""
    x2 = x.reshape(-1, x.shape[-1])
    if x.is_cuda:
        # cuBLASLt's GELU epilogue is the tanh form (checked in tools/epilogue_probe.py: 5e-6 from tanh, 5e-4
        # from erf in float32). On a CPU `_addmm_activation` applies the erf form, so it is not used there.
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
    if fused:
        mlp_hidden_states = linear_gelu_tanh(norm_hidden_states, self.proj_mlp.weight, self.proj_mlp.bias)
    else:
        mlp_hidden_states = self.act_mlp(self.proj_mlp(norm_hidden_states))
    joint_attention_kwargs = joint_attention_kwargs or {}
    attn_output = self.attn(hidden_states=norm_hidden_states, image_rotary_emb=image_rotary_emb,
                            **joint_attention_kwargs)

    if fused:
        projected = linear_of_concat(attn_output, mlp_hidden_states, self.proj_out.weight, self.proj_out.bias)
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
        """Replace the tanh-GELU MLP activations and single-block forwards of `model` (where their Linear
        layers are plain ``nn.Linear`` with a bias); returns how many of each."""
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
                    and _plain(parent.proj_mlp) and _plain(parent.proj_out) and _tanh_gelu(parent.act_mlp)):
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
