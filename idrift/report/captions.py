"""Captions: what each figure shows, on which profile and n, and what this profile cannot show.

A caption never states a finding the data cannot inform: on random weights (tiny, synthetic) ID_sim,
CLIP-T and LPIPS carry no meaning, and a figure drawn from them says so instead of reading a trend
off them. Captions are wrapped to the figure's width so that the PNG shows them whole.
"""

from __future__ import annotations

import textwrap

from idrift.stats import CONFIDENCE

RANDOM_PROFILES = ("tiny", "synthetic")
NO_FACE_NOTE = "no generated image has a face: every ID_sim is 0 by the aggregation rule (random weights)"
TIER_NOTE = ("the paper names only its end tiers (minimal, style); the four tiers between are idrift's own "
             "(idrift/data/prompts/complexity_v1.json), not the paper's")
BEYOND_PAPER = "Beyond the paper (idrift issue #21):"


def interval_text(unit: str = "identities") -> str:
    return f"bars/bands: {CONFIDENCE:.0%} clustered bootstrap over {unit} (idrift.stats)"


def profile_caveat(profile: str, metrics: tuple[str, ...] = ("id_sim",), faceless: bool = False) -> str:
    """What `profile` cannot show about `metrics`; '' on the real profile."""
    if profile not in RANDOM_PROFILES:
        return ""
    names = {"id_sim": "ID_sim", "lpips": "LPIPS", "clip_t": "CLIP-T", "latency": "latency"}
    shown = ", ".join(names.get(m, m) for m in metrics)
    text = f"Profile {profile}: the weights are random, so {shown} say nothing about the paper's claim"
    if "latency" in metrics:
        text += ("; tiny latencies are CPU seconds of toy models" if profile == "tiny"
                 else "; synthetic latencies are real-size GPU timings")
    if faceless:
        text += f"; {NO_FACE_NOTE}"
    return text + "."


def caption(*sentences: str) -> str:
    """Sentences joined, empty ones left out, each ending in a full stop."""
    parts = [s.strip() for s in sentences if s and s.strip()]
    parts = [p[0].upper() + p[1:] for p in parts]
    return " ".join(p if p.endswith((".", ":")) else p + "." for p in parts)


def wrap(text: str, width_in: float, fontsize: float = 8.0) -> str:
    """`text` wrapped to a figure `width_in` inches wide at `fontsize` points (about 0.5 em a character)."""
    chars = max(40, int(width_in * 72 / (fontsize * 0.52)))
    return "\n".join(textwrap.fill(p, chars) for p in text.split("\n"))


def setting(data, claim: str, sample: str, note: str = "") -> str:
    """A caption's setting sentence: 'Profile tiny, tier smoke: n = 4 identities per point (claim X)'."""
    return f"Profile {data.profile}, tier {data.run.tier}: {sample} (claim {claim}{'; ' + note if note else ''})"


def per_point(data, claim: str, n: int, note: str = "") -> str:
    """The setting of a figure whose every point is a mean over `n` identities."""
    return setting(data, claim, f"n = {identities(n)} per point", note)


def identities(n: int) -> str:
    """'1 identity', '4 identities'."""
    return f"{n} identity" if n == 1 else f"{n} identities"
