"""Write a measured baseline from a run (`--idrift-update-baselines`, `idrift bless`), never silently:
the caller prints the diff against the file it replaces.

Tolerances of measured baselines follow one table (`RULES`), keyed by metric-id prefix, so a blessed
file is reproducible and every number carries the rule that set it. The one-sided rules take their
direction from idrift.verdicts.METRICS, where every metric's direction is declared once.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from idrift.baselines.io import Baseline, ClaimBaseline, MetricBaseline, diff_baselines, load_baseline, write_baseline
from idrift.errors import IdriftError
from idrift.verdicts import direction_of


@dataclass(frozen=True)
class Rule:
    direction: str
    tolerance: float
    kind: str = "absolute"
    unit: str = ""
    hardware_bound: bool = False
    note: str = ""


GOLDEN = "golden value of random weights: any change means the pipeline's numbers changed"
# (metric prefix, profiles it applies to or None for all, rule). First match wins.
RULES: tuple[tuple[str, tuple[str, ...] | None, Rule | None], ...] = (
    # CPU timings of tiny models vary with the machine and its load: no regression signal, not recorded.
    ("latency_s", ("tiny",), None),
    ("speedup", ("tiny",), None),
    ("compile_s", ("tiny",), None),
    ("gpu_peak_gb", ("tiny",), None),
    # Compilation runs on the host's CPUs, so hosts of one GPU model differ: a cold compile moves far more
    # than a steady round between two runs of the same code.
    ("compile_s", None, Rule(direction_of("compile_s"), 0.60, "relative", "s", True,
                             "first call minus steady state, a cold compile on the host's CPUs; "
                             "same GPU model only")),
    ("gpu_peak_gb", None, Rule(direction_of("gpu_peak_gb"), 0.05, "relative", "GB", True,
                               "peak allocated; same GPU model only")),
    # Kernels differ between GPU models, so how far a fast path moves the pixels does too.
    # The largest difference of one image is an extreme: it moves by a level between runs of the same code.
    ("reference_diff_max", None, Rule(direction_of("reference_diff"), 2.0, "absolute", "8-bit level", True,
                                      "largest difference from the eager image of the same spec, same run")),
    ("reference_diff", None, Rule(direction_of("reference_diff"), 0.5, "absolute", "8-bit level", True,
                                  "against the eager image of the same spec, same run")),
    ("latency_s", None, Rule(direction_of("latency_s"), 0.10, "relative", "s", True,
                             "seconds per image; same GPU model only")),
    ("speedup", None, Rule(direction_of("speedup"), 0.15, "relative", "x", False,
                           "ratio measured in one run: portable")),
    ("samples_varying_with_guidance", None, Rule("equal", 0.0, unit="samples", note="structural: exact")),
    ("trajectory_final_mismatches", None, Rule("equal", 0.0, unit="samples", note="structural: exact")),
    ("pixel_mean", None, Rule("equal", 0.5, unit="8-bit level",
                              note=GOLDEN + " (0.5 absorbs CPU float reassociation)")),
    ("id_sim", ("real",), Rule(direction_of("id_sim"), 0.005, unit="cosine",
                               note="paired per sample; "
                                    "0.005 with 4 seeds per pair gives >=90% power for a 0.02 drop")),
    ("lpips", ("real",), Rule(direction_of("lpips"), 0.005, unit="LPIPS")),
    ("detection_rate", ("real",), Rule(direction_of("detection_rate"), 0.05, unit="fraction")),
    ("peak_step", ("real",), Rule(direction_of("peak_step"), 4.0, unit="steps")),
    ("", ("real",), Rule("equal", 0.02, note="measured level, two-sided")),
    ("", None, Rule("equal", 1e-3, note=GOLDEN)),
)


def rule_for(metric: str, profile: str) -> Rule | None:
    for prefix, profiles, rule in RULES:
        if metric.startswith(prefix) and (profiles is None or profile in profiles):
            return rule
    raise AssertionError("RULES ends with a catch-all")


def refuse_lossy(session) -> None:
    """fast.require_lossless(pipeline, "identity baselines"), on the session's provenance (a run read back
    by `idrift bless` has no pipeline): a lossy run makes no baseline unless the session allows it."""
    acceleration = session.provenance.get("acceleration") or {}
    if acceleration.get("lossy") and not session.options.allow_lossy_baselines:
        label = acceleration.get("spec_label") or acceleration.get("label")
        raise IdriftError(
            f"identity baselines need a lossless pipeline; this run is {label} "
            f"({', '.join(acceleration.get('techniques', []))}). Rerun without the lossy options, or allow it "
            "with --idrift-allow-lossy-baselines (pytest) or --allow-lossy (idrift bless): the baseline's "
            "provenance then says lossy")


def baseline_from_session(session, name: str, description: str = "") -> Baseline:
    """The baseline a session's results make. Refuses a lossy run unless allowed (see `refuse_lossy`)."""
    from idrift.baselines.judge import gate_samples

    refuse_lossy(session)

    claims = {}
    for claim_id, result in session.results.items():
        metrics = {}
        for metric, value in sorted(result.figures.items()):
            rule = rule_for(metric, session.profile)
            if rule is None:
                continue
            samples = gate_samples(result, metric)
            metrics[metric] = MetricBaseline(
                aggregate=value, n=len(samples) if samples else None, tolerance=rule.tolerance,
                tolerance_kind=rule.kind, direction=rule.direction, unit=rule.unit,
                hardware_bound=rule.hardware_bound, note=rule.note, samples=samples,
            )
        if not metrics:
            continue
        claims[claim_id] = ClaimBaseline(protocol=f"{result.claim.protocol}; idrift {session.options.tier} tier",
                                         metrics=metrics)
    seeds = sorted({seed for claim in (r.claim for r in session.results.values())
                    for seed in claim.samples.seeds[session.options.tier]})
    command = session.options.invocation or " ".join([
        "pytest benchmarks --idrift-profile {} --idrift-tier {} --idrift-update-baselines".format(
            session.profile, session.options.tier),
        *session.options.acceleration_args("pytest"),
        *(["--idrift-allow-lossy-baselines"] if session.options.lossy else []),
    ])
    provenance = dict(session.provenance, profile=session.profile, seeds=seeds, command=command)
    label = (session.provenance.get("acceleration") or {}).get("spec_label", "eager")
    if not description:
        description = f"measured on the {session.profile} profile"
        if "lossy" in label:
            description += f", LOSSY acceleration {label} (allowed with --idrift-allow-lossy-baselines)"
    return Baseline(name=name, description=description,
                    created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    provenance=provenance, claims=claims)


def update_baseline(session) -> list[str]:
    """Rewrite the session's baseline file from its results; return the lines to print."""
    from idrift.baselines.io import baselines_dir, resolve_baseline
    from idrift.config import DEFAULT_BASELINE

    name = session.options.baseline or DEFAULT_BASELINE[session.profile]
    if name == "paper":
        return ["not rewriting baselines/paper.json: it holds the paper's numbers; name another with --idrift-baseline"]
    try:
        path = resolve_baseline(name, baselines_dir())
        old = load_baseline(path)
    except Exception:  # a new baseline (or an unreadable one, replaced wholesale)
        path, old = (Path(name) if name.endswith(".json") else baselines_dir() / f"{name}.json"), None
    try:
        new = baseline_from_session(session, name=path.stem)
    except IdriftError as exc:  # a lossy run (the plugin refuses it up front; this is the last guard)
        return [f"not rewriting {path}: {exc}"]
    if old is not None:  # claims this run did not measure keep their old entries
        for claim_id, claim in old.claims.items():
            new.claims.setdefault(claim_id, claim)
    changes = diff_baselines(old, new) if old is not None else [f"+ new baseline with {len(new.claims)} claims"]
    write_baseline(new, path)
    return [f"baseline {path} rewritten; {len(changes)} change(s):"] + [f"  {line}" for line in changes[:200]]
