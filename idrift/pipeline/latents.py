"""FLUX's packed latents: the 2x2 patch tokens the transformers read, the position ids of those image
tokens, and the schedule shift that depends on how many there are. Pure tensor arithmetic, as diffusers'
FluxPipeline does it, so that idrift's loop and the official pipeline see the same latents."""

from __future__ import annotations

import torch


def flux_shift(image_seq_len: int, config: dict) -> float:
    """FLUX.1-dev's resolution-dependent schedule shift (mu), linear in the number of image tokens."""
    slope = (config["max_shift"] - config["base_shift"]) / (config["max_image_seq_len"] - config["base_image_seq_len"])
    return image_seq_len * slope + config["base_shift"] - slope * config["base_image_seq_len"]


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/2 * W/2, C * 4): FLUX's 2x2 patch tokens."""
    b, c, h, w = latents.shape
    latents = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return latents.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(latents: torch.Tensor, latent_h: int, latent_w: int) -> torch.Tensor:
    """(B, tokens, C * 4) -> (B, C, latent_h, latent_w): the inverse of pack_latents."""
    b, _, d = latents.shape
    latents = latents.view(b, latent_h // 2, latent_w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return latents.reshape(b, d // 4, latent_h, latent_w)


def latent_image_ids(latent_h: int, latent_w: int, device, dtype) -> torch.Tensor:
    """(tokens, 3) position ids of the packed image tokens: 0, the token's row, the token's column."""
    ids = torch.zeros(latent_h // 2, latent_w // 2, 3)
    ids[..., 1] += torch.arange(latent_h // 2)[:, None]
    ids[..., 2] += torch.arange(latent_w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)
