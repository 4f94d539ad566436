"""FLUX attention's query/key RMSNorm and rotary embedding in one pass over memory: `QKNormRope` (lossless).

Before attention every FLUX block normalises each head of its queries and keys (RMSNorm over 128 channels,
with the text stream's own weights in double blocks), concatenates text and image tokens, and rotates them
by the rotary embedding. Compiled, inductor runs this as one to three elementwise kernels per block that
reach about 1.2 TB/s (87 us for a single block's queries and keys at 4400 tokens on an H100:
measurements/h100/lossless_profile_table.txt). `qk_norm_rope` is one Triton kernel per stream that reads
each row of 128 channels once and writes it normalised and rotated into its place in the concatenation.

The arithmetic is the model's on CUDA (diffusers 0.42 with torch's fused RMSNorm): normalise and multiply
by the weight in float32, round, rotate in float32 with the float32 tables, round. Only the order of the
float32 sum of squares differs. `QKNormRopeProcessor` is diffusers'
`FluxAttnProcessor` with that op in place of the norms, the concatenation and `apply_rotary_emb`; it is
installed with diffusers' own `set_processor`. Off CUDA (or without Triton) the op runs the model's own
functions, so CPU tests compare the processor with diffusers' bitwise.

Example (tiny CPU model):
    >>> from idrift.models.tiny import build_tiny_bundle
    >>> model = build_tiny_bundle().backbone("schnell")
    >>> fused = QKNormRope()
    >>> fused.install(model) == len(model.transformer_blocks) + len(model.single_transformer_blocks)
    True
    >>> fused.uninstall()
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor, _get_qkv_projections
from torch import nn

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only torch build: the op runs the model's functions
    triton = None

if triton is not None:
    @triton.jit
    def _norm_rope_kernel(x_ptr, w_ptr, cos_ptr, sin_ptr, out_ptr, heads, seq, out_seq, token_offset, eps,
                          D: tl.constexpr, BLOCK_H: tl.constexpr):
        # One program per token of this stream: its heads x D tile, and its rows of the float32 cos/sin
        # tables (read once per token, not per head). x: (batch, seq, heads, D) contiguous; out: (batch,
        # heads, out_seq, D) contiguous, the layout cuDNN attention reads, this stream's tokens from
        # token_offset on.
        token = tl.program_id(0)
        b = token // seq
        pos = token % seq + token_offset
        h = tl.arange(0, BLOCK_H)
        d = tl.arange(0, D)
        mask = (h < heads)[:, None]
        row = (token * heads + h)[:, None] * D
        x = tl.load(x_ptr + row + d[None, :], mask=mask, other=0.0).to(tl.float32)
        partner = tl.load(x_ptr + row + (d ^ 1)[None, :], mask=mask, other=0.0).to(tl.float32)
        inv = (1.0 / tl.sqrt(tl.sum(x * x, axis=1) / D + eps))[:, None]
        w = tl.load(w_ptr + d).to(tl.float32)[None, :]
        w_partner = tl.load(w_ptr + (d ^ 1)).to(tl.float32)[None, :]
        # torch's fused rms_norm on CUDA: x * rsqrt(mean(x^2) + eps) * weight in float32, one rounding
        y = (x * inv * w).to(out_ptr.dtype.element_ty).to(tl.float32)
        y_partner = (partner * inv * w_partner).to(out_ptr.dtype.element_ty).to(tl.float32)
        cos = tl.load(cos_ptr + pos * D + d)[None, :]
        sin = tl.load(sin_ptr + pos * D + d)[None, :]
        # diffusers' apply_rotary_emb on pairs of channels, in float32:
        # out[2i] = y[2i] cos - y[2i+1] sin, out[2i+1] = y[2i+1] cos + y[2i] sin
        sign = tl.where(d % 2 == 0, -1.0, 1.0)[None, :]
        out = y * cos + (sign * y_partner) * sin
        out_row = ((b * heads + h) * out_seq + pos)[:, None] * D
        tl.store(out_ptr + out_row + d[None, :], out.to(out_ptr.dtype.element_ty), mask=mask)


def _fused_here(t: torch.Tensor) -> bool:
    return triton is not None and t.is_cuda


@torch.library.custom_op("idrift::qk_norm_rope", mutates_args=())
def qk_norm_rope(text: torch.Tensor | None, image: torch.Tensor, text_weight: torch.Tensor | None,
                 image_weight: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, eps: float) -> torch.Tensor:
    """``apply_rotary_emb(cat([rms_norm(text), rms_norm(image)], dim=1), (cos, sin), sequence_dim=1)`` for
    (batch, tokens, heads, head_dim) queries or keys; `text` None for a single block."""
    parts = ([] if text is None else [(text, text_weight)]) + [(image, image_weight)]
    batch, _, heads, dim = image.shape
    seq = sum(p.shape[1] for p, _ in parts)
    if not _fused_here(image):
        normed = torch.cat([F.rms_norm(p, (dim,), w, eps) for p, w in parts], dim=1)
        return apply_rotary_emb(normed, (cos, sin), sequence_dim=1)
    # (batch, heads, seq, dim) in memory, returned as a (batch, seq, heads, dim) view: the model's shape,
    # and after its transpose for attention the contiguous layout that cuDNN attention reads fastest
    out = image.new_empty(batch, heads, seq, dim)
    cos, sin = cos.float().contiguous(), sin.float().contiguous()  # no copies: FLUX's tables are float32
    offset = 0
    for part, weight in parts:
        part = part.contiguous()
        _norm_rope_kernel[(batch * part.shape[1],)](
            part, weight, cos, sin, out, heads, part.shape[1], seq, offset, eps,
            D=dim, BLOCK_H=triton.next_power_of_2(heads), num_warps=4)
        offset += part.shape[1]
    return out.transpose(1, 2)


@qk_norm_rope.register_fake
def _(text, image, text_weight, image_weight, cos, sin, eps):
    batch, _, heads, dim = image.shape
    seq = image.shape[1] + (0 if text is None else text.shape[1])
    return image.new_empty(batch, heads, seq, dim).transpose(1, 2)


def _rms_weight(norm: nn.Module) -> torch.Tensor | None:
    if isinstance(norm, nn.RMSNorm) and norm.weight is not None:
        return norm.weight
    return None


class QKNormRopeProcessor(FluxAttnProcessor):
    """diffusers 0.42's `FluxAttnProcessor.__call__`, its query/key norms, concatenation and rotary embedding
    through `qk_norm_rope` (tests compare it with the original)."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        if image_rotary_emb is None or not isinstance(image_rotary_emb, tuple):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
        query, key, value, encoder_query, encoder_key, encoder_value = _get_qkv_projections(
            attn, hidden_states, encoder_hidden_states)
        query = query.unflatten(-1, (-1, attn.head_dim))
        key = key.unflatten(-1, (-1, attn.head_dim))
        value = value.unflatten(-1, (-1, attn.head_dim))
        cos, sin = image_rotary_emb
        if attn.added_kv_proj_dim is not None:
            encoder_query = encoder_query.unflatten(-1, (-1, attn.head_dim))
            encoder_key = encoder_key.unflatten(-1, (-1, attn.head_dim))
            encoder_value = encoder_value.unflatten(-1, (-1, attn.head_dim))
            query = qk_norm_rope(encoder_query, query, attn.norm_added_q.weight, attn.norm_q.weight, cos, sin,
                                 attn.norm_q.eps)
            key = qk_norm_rope(encoder_key, key, attn.norm_added_k.weight, attn.norm_k.weight, cos, sin,
                               attn.norm_k.eps)
            value = torch.cat([encoder_value, value], dim=1)
        else:
            query = qk_norm_rope(None, query, None, attn.norm_q.weight, cos, sin, attn.norm_q.eps)
            key = qk_norm_rope(None, key, None, attn.norm_k.weight, cos, sin, attn.norm_k.eps)

        hidden_states = dispatch_attention_fn(query, key, value, attn_mask=attention_mask,
                                              backend=self._attention_backend, parallel_config=self._parallel_config)
        hidden_states = hidden_states.flatten(2, 3)
        hidden_states = hidden_states.to(query.dtype)

        if encoder_hidden_states is not None:
            encoder_hidden_states, hidden_states = hidden_states.split_with_sizes(
                [encoder_hidden_states.shape[1], hidden_states.shape[1] - encoder_hidden_states.shape[1]], dim=1)
            hidden_states = attn.to_out[0](hidden_states.contiguous())
            hidden_states = attn.to_out[1](hidden_states)
            encoder_hidden_states = attn.to_add_out(encoder_hidden_states.contiguous())
            return hidden_states, encoder_hidden_states
        return hidden_states


def _eligible(attn: nn.Module) -> bool:
    """A FluxAttention with diffusers' own processor and torch RMSNorms with weights and one eps."""
    if type(attn).__name__ != "FluxAttention" or type(attn.processor) is not FluxAttnProcessor:
        return False
    norms = [attn.norm_q, attn.norm_k] + ([attn.norm_added_q, attn.norm_added_k]
                                          if attn.added_kv_proj_dim is not None else [])
    return all(_rms_weight(n) is not None and n.eps == attn.norm_q.eps for n in norms)


class QKNormRope:
    """Installs `QKNormRopeProcessor` in every eligible FluxAttention of a model, and takes it out again."""

    def __init__(self):
        self._installed: list[tuple[nn.Module, object]] = []  # (attention module, its original processor)

    def install(self, model: nn.Module) -> int:
        """Returns how many attention modules now use the fused processor."""
        count = 0
        for module in model.modules():
            if _eligible(module):
                self._installed.append((module, module.processor))
                module.set_processor(QKNormRopeProcessor())
                count += 1
        return count

    def uninstall(self) -> None:
        for module, processor in self._installed:
            module.set_processor(processor)
        self._installed.clear()
