"""The summaries, one module per claim family, and SUMMARIES: a claim's `summary` name -> its function.

A summary reads a claim's Table and fills its ClaimResult: `figures` (metric id -> number: what the
baseline stores and the gate compares) and `samples` (metric id -> {paired sample key -> number}: what the
paired gate resamples). idrift.scoring.claims registers its own two here.
"""

from __future__ import annotations

from idrift.evaluate.figures import put_per_arm
from idrift.evaluate.records import ClaimResult, Table
from idrift.evaluate.summaries.backbone_swap import (
    summary_backbone_swap,
    summary_by_prompt,
    summary_dev4_diagnostic,
    summary_per_identity,
)
from idrift.evaluate.summaries.drift import summary_alpha, summary_drift, summary_prompt_complexity
from idrift.evaluate.summaries.fast_paths import summary_fast_paths
from idrift.evaluate.summaries.guidance import summary_guidance
from idrift.evaluate.summaries.latency import summary_latency
from idrift.evaluate.summaries.text_identity import summary_text_identity


def summary_per_arm(result: ClaimResult, table: Table) -> None:
    """Per-arm means only (pixel_mean, and ID_sim / LPIPS where the claim lists them): for a claim whose
    expectations read `<metric>[<arm>]` figures. Registered metrics get theirs in every summary."""
    put_per_arm(result, table, ("pixel_mean", *(m for m in ("id_sim", "lpips") if m in result.claim.metrics)))


SUMMARIES = {
    "fast_paths": summary_fast_paths,
    "backbone_swap": summary_backbone_swap,
    "dev4_diagnostic": summary_dev4_diagnostic,
    "by_prompt": summary_by_prompt,
    "per_identity": summary_per_identity,
    "drift": summary_drift,
    "guidance": summary_guidance,
    "alpha": summary_alpha,
    "prompt_complexity": summary_prompt_complexity,
    "text_identity": summary_text_identity,
    "latency": summary_latency,
    "per_arm": summary_per_arm,
}
