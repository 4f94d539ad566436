"""One batch of InfiniteYou samples: specs that differ only in their seed, generated together.

`check_batch` says whether specs can share one batch (and how long their schedule is), `BatchInputs`
holds what every denoising step of the batch reads, and `nonfinite_samples` names the samples of a batch
whose tensor went NaN or inf, so that an error points at them and not at the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from idrift.config import RunSpec


def check_batch(specs: list[RunSpec], trajectory_steps: tuple[int, ...]) -> int:
    """The batch's total steps (the length of its schedule), once the specs are known to form one batch:
    at least one, differing only in their seed, each seed once, and every trajectory step inside the
    schedule. Raises ValueError otherwise."""
    if not specs:
        raise ValueError("generate_batch needs at least one spec")
    first = specs[0]
    for other in specs[1:]:
        if other.replace(seed=first.seed) != first:
            fields = [k for k, v in first.as_dict().items() if k != "seed" and other.as_dict()[k] != v]
            raise ValueError(f"generate_batch: specs must differ only in their seed; sample {other.key} "
                             f"differs from {first.key} in {', '.join(fields)}: generate them in separate batches")
    if len({s.seed for s in specs}) != len(specs):
        raise ValueError(f"generate_batch: seeds repeat in {[s.seed for s in specs]}; each sample needs its own")
    total = first.trajectory_of if first.mode == "trajectory" else first.steps
    bad = [k for k in trajectory_steps if not 1 <= k <= total]
    if bad:
        raise ValueError(f"trajectory steps {bad} are outside 1..{total}")
    return total


@dataclass
class BatchInputs:
    """What every denoising step of one batch reads: its specs and backbone, the text and identity
    encodings and the control latents (one row per sample), the image-token ids, the guidance (None
    for a backbone without a guidance embedding) and the latents' unpacked size."""

    specs: list[RunSpec]
    backbone: Any
    pooled: torch.Tensor
    prompt_embeds: torch.Tensor
    text_ids: torch.Tensor
    id_tokens: torch.Tensor
    control: torch.Tensor
    img_ids: torch.Tensor
    guidance: torch.Tensor | None
    latent_h: int
    latent_w: int

    @property
    def first(self) -> RunSpec:
        """The batch's first spec: every field but the seed is the whole batch's."""
        return self.specs[0]

    @property
    def size(self) -> int:
        return len(self.specs)


def nonfinite_samples(x: torch.Tensor, specs: list[RunSpec]) -> str:
    """The keys of the samples whose row of batch `x` holds NaN or inf ("" when all are finite)."""
    finite = torch.isfinite(x).flatten(1).all(dim=1).tolist()
    return ", ".join(s.key for s, ok in zip(specs, finite) if not ok)
