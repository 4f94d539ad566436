"""The fast paths' figures in a baseline: its `fast_paths` entry.

benchmarks/test_speed.py measures the eager reference and the accelerated paths in one run and writes a
summary (rows per (mode, arm): seconds of each round, median, peak GPU memory, pixel and latent difference
from the reference; compile seconds per mode). This module turns such a summary into baseline metrics,
writes them into a baseline file beside the claims (`--idrift-update-baselines`, or `idrift bless-speed
SUMMARY` for a summary kept from an earlier run), and gates a new summary against them with the claims'
gates (idrift.baselines.gate): absolute seconds, images/s, peak memory and compile time only on the same
GPU model; speed-ups, measured as ratios within one run, everywhere.

Metric ids name the mode and the arm: `latency_s[lossless/schnell-4]`, `speedup[lossy/dev-28]`,
`images_per_s[reference/batch4-schnell-4]`, `compile_s[lossless]` (and its `blocks_compile_s[lossless]`
part), `trajectory_ratio[lossless]` (a 9-budget trajectory run over the naive sum of separate runs;
`trajectory_ratio[lossless/fbc-drift-trajectory]` with First-Block-Cache), `latent_rel_diff[lossless/schnell-4]`,
and where faces could be measured (the real profile) `id_sim_delta[lossy/schnell-4]`.
The entry carries its own provenance (the run that measured it), since it is updated apart from the claims.

    >>> figures = speed_figures({"rows": [
    ...     {"mode": "reference", "arm": "schnell-4", "median_s": 1.2, "seconds": [1.2], "gpu_peak_gb": 42.7},
    ...     {"mode": "lossless", "arm": "schnell-4", "median_s": 0.8, "seconds": [0.8], "gpu_peak_gb": 42.0,
    ...      "speedup": 1.5, "latent_rel_diff": 0.005}], "compile_s": {"lossless": 61.0}})
    >>> sorted(figures)
    ['compile_s[lossless]', 'gpu_peak_gb[lossless/schnell-4]', 'gpu_peak_gb[reference/schnell-4]', 'latency_s[lossless/schnell-4]', 'latency_s[reference/schnell-4]', 'latent_rel_diff[lossless/schnell-4]', 'speedup[lossless/schnell-4]']
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from idrift.baselines.io import Baseline, ClaimBaseline, MetricBaseline, diff_baselines, load_baseline, write_baseline
from idrift.baselines.schema import FAST_PATHS_ID
from idrift.baselines.update import Rule
from idrift.errors import BaselineError

CLAIM_ID = FAST_PATHS_ID
PROTOCOL = ("benchmarks/test_speed.py: eager reference and accelerated paths (idrift.pipeline.fast, step_cache, "
            "batches) measured in one run; median seconds end to end, warm-up excluded, caches cleared every round")
SAME_GPU = "same GPU model only"
RULES: dict[str, Rule] = {
    "latency_s": Rule("lower_is_better", 0.10, "relative", "s", True, f"seconds per call; {SAME_GPU}"),
    "speedup": Rule("higher_is_better", 0.15, "relative", "x", False,
                    "reference median over this arm's (per image for batches), measured in one run: portable"),
    "images_per_s": Rule("higher_is_better", 0.10, "relative", "images/s", True, SAME_GPU),
    "gpu_peak_gb": Rule("lower_is_better", 0.05, "relative", "GB", True, f"peak allocated; {SAME_GPU}"),
    "compile_s": Rule("lower_is_better", 0.30, "relative", "s", True,
                      f"first calls minus steady state, cold compile cache; {SAME_GPU}"),
    "blocks_compile_s": Rule("lower_is_better", 0.30, "relative", "s", True,
                             f"the part of compile_s spent on the repeated blocks (and their CUDA graph captures); {SAME_GPU}"),
    "trajectory_ratio": Rule("lower_is_better", 0.15, "relative", "x", False,
                             "one 28-step trajectory run over the 9 separate reference runs: portable"),
    # Kernels differ between GPU models, so how far a fast path moves the latents does too.
    "latent_rel_diff": Rule("lower_is_better", 0.005, "absolute", "relative L2", True,
                            f"latents vs the reference path (bf16 noise floor ~0.0045 on the H100); {SAME_GPU}"),
    "id_sim_delta": Rule("higher_is_better", 0.02, "absolute", "cosine", False,
                         "ID_sim of this arm's image minus the reference path's, same spec and run (real weights only)"),
}


def speed_figures(summary: Mapping) -> dict[str, float]:
    """Baseline metric id -> value for every figure of a test_speed summary that has one."""
    figures: dict[str, float] = {}
    for row in summary.get("rows", []):
        where = f"{row['mode']}/{row['arm']}"
        if row.get("median_s") is None:
            continue
        noise = row["arm"].startswith("noise-")  # the bf16 noise floor: only its latent difference matters
        if "images_per_s" in row:
            figures[f"images_per_s[{where}]"] = float(row["images_per_s"])
        elif not noise:
            figures[f"latency_s[{where}]"] = float(row["median_s"])
        if row.get("speedup") is not None and not noise:
            figures[f"speedup[{where}]"] = float(row["speedup"])
        if row.get("gpu_peak_gb") and not noise:
            figures[f"gpu_peak_gb[{where}]"] = float(row["gpu_peak_gb"])
        if row.get("latent_rel_diff") is not None:
            figures[f"latent_rel_diff[{where}]"] = float(row["latent_rel_diff"])
        if row.get("id_sim_delta") is not None:
            figures[f"id_sim_delta[{where}]"] = float(row["id_sim_delta"])
        if row.get("ratio_to_naive_reference") is not None:
            plain = row["arm"] == "drift-trajectory"  # trajectory_ratio[lossless]; with FBC: [lossless/fbc-drift-trajectory]
            figures[f"trajectory_ratio[{row['mode'] if plain else where}]"] = float(row["ratio_to_naive_reference"])
    for mode, seconds in (summary.get("compile_s") or {}).items():
        if seconds is not None:
            figures[f"compile_s[{mode}]"] = float(seconds)
    for mode, parts in (summary.get("compile_parts_s") or {}).items():
        if parts and parts.get("blocks") is not None:
            figures[f"blocks_compile_s[{mode}]"] = float(parts["blocks"])
    return figures


def _rule(metric: str) -> Rule:
    return RULES[metric.partition("[")[0]]


def speed_claim(summary: Mapping, provenance: Mapping) -> ClaimBaseline:
    """The `fast_paths` baseline entry a summary makes, with the provenance of the run that made it."""
    metrics = {}
    for metric, value in sorted(speed_figures(summary).items()):
        rule = _rule(metric)
        metrics[metric] = MetricBaseline(aggregate=value, n=None, tolerance=rule.tolerance, tolerance_kind=rule.kind,
                                         direction=rule.direction, unit=rule.unit, hardware_bound=rule.hardware_bound,
                                         note=rule.note)
    if not metrics:
        raise BaselineError("the speed summary holds no measured arm (every row lacks median_s): nothing to record")
    return ClaimBaseline(protocol=PROTOCOL, metrics=metrics, provenance=dict(provenance))


def update_speed_baseline(path: str | Path, summary: Mapping, provenance: Mapping, *, write: bool = True) -> list[str]:
    """Merge a summary's figures into the `fast_paths` entry of the baseline at `path` (metrics it did not
    measure keep their old values; the entry's provenance becomes this run's). Returns the lines to print."""
    path = Path(path)
    if path.name == "paper.json":
        return [f"not rewriting {path}: it holds the paper's numbers; name another baseline"]
    old = load_baseline(path)
    new_claim = speed_claim(summary, provenance)
    previous = old.claims.get(CLAIM_ID)
    if previous is not None:
        kept = set(previous.metrics) - set(new_claim.metrics)
        new_claim.metrics = {**previous.metrics, **new_claim.metrics}
        new_claim.provenance["earlier_runs"] = earlier_runs(previous.provenance or old.provenance, kept)
    new = Baseline(name=old.name, description=old.description, created=old.created, provenance=old.provenance,
                   claims={**old.claims, CLAIM_ID: new_claim}, path=path)
    changes = diff_baselines(old, new)
    if write:
        write_baseline(new, path)
    verb = "rewritten" if write else "would change"
    return [f"baseline {path} {verb} ({CLAIM_ID}); {len(changes)} change(s):"] + [f"  {line}" for line in changes[:200]]


def earlier_runs(previous: Mapping, kept: set[str]) -> list[dict]:
    """Provenance of the earlier runs whose metrics an update keeps, each with the metric ids it still
    holds: a merged entry says which run measured every number in it."""
    runs = [dict(run) for run in previous.get("earlier_runs", [])]
    for run in runs:
        run["metrics"] = sorted(set(run["metrics"]) & kept)
    claimed = {m for run in runs for m in run["metrics"]}
    own = sorted(kept - claimed)
    if own:
        runs.append({**{k: v for k, v in previous.items() if k != "earlier_runs"}, "metrics": own})
    return [run for run in runs if run["metrics"]]


def _row_seconds(summary: Mapping) -> dict[str, list[float]]:
    return {f"{r['mode']}/{r['arm']}": [float(s) for s in r.get("seconds") or []] for r in summary.get("rows", [])}


def gate_speed(baseline: Baseline, summary: Mapping, candidate_gpu: str | None) -> list:
    """A verdict (idrift.baselines.gate.Verdict) for every `fast_paths` metric of `baseline` that the
    summary measured. Timings are gated with their rounds; a speed-up with both arms' rounds (ratio_gate)."""
    from idrift.baselines.gate import compare_metric, ratio_gate

    claim = baseline.claims.get(CLAIM_ID)
    if claim is None:
        return []
    baseline_gpu = (claim.provenance or baseline.provenance).get("gpu")
    figures = speed_figures(summary)
    seconds = _row_seconds(summary)
    batches = {f"{r['mode']}/{r['arm']}": int(r.get("batch", 1)) for r in summary.get("rows", [])}
    verdicts = []
    for metric, base in sorted(claim.metrics.items()):
        if metric not in figures:
            continue
        kind, _, where = metric.partition("[")
        where = where.rstrip("]")
        arm = where.partition("/")[2]
        reference = seconds.get(f"reference/{base_arm(arm)}", [])
        if kind == "speedup" and len(reference) >= 2 and len(seconds.get(where, [])) >= 2:
            per_image = [s / batches.get(where, 1) for s in seconds[where]]
            verdicts.append(ratio_gate(reference, per_image, base.aggregate, tolerance=base.tolerance,
                                       tolerance_kind=base.tolerance_kind, direction=base.direction,
                                       claim=CLAIM_ID, metric=metric))
            continue
        rounds = seconds.get(where) if kind == "latency_s" and len(seconds.get(where, [])) >= 2 else None
        verdicts.append(compare_metric(
            CLAIM_ID, metric, base, candidate_aggregate=figures[metric],
            candidate_samples={f"round{i}": s for i, s in enumerate(rounds)} if rounds else None,
            baseline_gpu=baseline_gpu, candidate_gpu=candidate_gpu))
    return verdicts


def base_arm(arm: str) -> str:
    """The reference arm a variant is compared with: noise-dev-28, fbc-dev-28 -> dev-28; batch4-schnell-4 ->
    schnell-4; a plain arm is its own."""
    head, _, rest = arm.partition("-")
    return rest if head in ("noise", "fbc") or head.startswith("batch") else arm
