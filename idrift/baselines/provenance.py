"""What differs between where a baseline came from and this run: its provenance against the run's.

Each difference is one line of a comparison's notes; none of them changes a verdict by itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Packages whose major.minor changes what the numbers mean; a comparison flags a difference.
KEY_PACKAGES = ("torch", "diffusers", "transformers", "insightface", "onnxruntime", "lpips")


def gpu_model(name: str | None) -> str | None:
    """A GPU's name as compared: lower case, runs of whitespace as one space; None for no GPU."""
    return " ".join(name.lower().split()) if name else None


def _major_minor(version: str) -> str:
    m = re.match(r"^\s*(\d+)\.(\d+)", version)
    return f"{m.group(1)}.{m.group(2)}" if m else version.strip()


def provenance_mismatches(baseline_prov: Mapping, run_prov: Mapping) -> list[str]:
    """What differs between where the baseline came from and this run, one line each.

    Unknown on either side (the paper records no package versions or fingerprints) is not a
    mismatch: only what both sides record is compared.
    """
    out: list[str] = []
    bp, rp = baseline_prov.get("profile"), run_prov.get("profile")
    if bp and rp and bp != rp:
        out.append(f"profile: baseline {bp!r}, this run {rp!r}")
    bg, rg = baseline_prov.get("gpu"), run_prov.get("gpu")
    if gpu_model(bg) != gpu_model(rg):
        out.append(f"gpu: baseline {bg or 'none (CPU)'!s}, this run {rg or 'none (CPU)'!s}")
    bw, rw = baseline_prov.get("weights") or {}, run_prov.get("weights") or {}
    if bw and rw:
        for comp in sorted(bw.keys() | rw.keys()):
            if bw.get(comp) != rw.get(comp):
                out.append(
                    f"weights.{comp}: baseline {bw.get(comp, '(not recorded)')}, "
                    f"this run {rw.get(comp, '(not recorded)')}"
                )
    bpk, rpk = baseline_prov.get("packages") or {}, run_prov.get("packages") or {}
    for name in KEY_PACKAGES:
        if name in bpk and name in rpk and _major_minor(bpk[name]) != _major_minor(rpk[name]):
            out.append(f"packages.{name}: baseline {bpk[name]}, this run {rpk[name]}")
    ba, ra = _acceleration(baseline_prov), _acceleration(run_prov)
    if ba != ra:
        lossy = " (lossy: its numbers deviate from the reference path)" if "lossy" in ra else ""
        out.append(f"acceleration: baseline {ba}, this run {ra}{lossy}")
    return out


def _acceleration(prov: Mapping) -> str:
    """The acceleration label a provenance records (idrift.accel.plan.AccelerationPlan.label).
    Not recorded means eager: every baseline and run made before acceleration was recorded (and the
    paper's) used no speed-up."""
    acceleration = prov.get("acceleration") or {}
    return acceleration.get("spec_label") or acceleration.get("label") or "eager"
