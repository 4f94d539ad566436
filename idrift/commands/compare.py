"""`idrift compare RUN_DIR --baseline NAME_OR_PATH`: gate a run against a baseline.

    idrift compare runs/ci --baseline tiny-cpu                      # a table for the terminal
    idrift compare runs/ci --baseline tiny-cpu --format markdown >> "$GITHUB_STEP_SUMMARY"
    idrift compare runs/ci --baseline baselines/h100.json --format json

The run's claims are re-evaluated from its store, then every figure the baseline holds is gated
exactly as `pytest benchmarks` gates it (BenchmarkSession.gate: paired bootstrap where both sides
have per-sample values, a band around aggregate-only numbers, the ratio gate for the speed-up,
absolute latency only on the same GPU model). One row per claim metric: baseline, candidate,
difference, interval, tolerance, verdict. Metrics only one side has get a row too ('missing':
the baseline has it, the run does not; 'no baseline': the other way round); neither fails.
Provenance differences (profile, GPU, weights, key package versions) are listed.

Exit status: 1 when any row is 'fail' (a regression), 0 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import json

FORMATS = ("text", "markdown", "json")
COLUMNS = ("claim", "metric", "baseline", "candidate", "difference", "interval", "tolerance", "verdict")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="gate a run directory against a baseline (exit 1 on regression)",
        description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `idrift run --out`")
    parser.add_argument("--baseline", required=True, metavar="NAME_OR_PATH",
                        help="baseline name in baselines/ (tiny-cpu, paper, ...) or a path to a .json file")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="text (terminal), markdown (CI job summary) or json (machines). Default text")
    parser.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------- rows


def _empty_row(claim: str, metric: str, status: str, note: str) -> dict:
    return {"claim": claim, "metric": metric, "status": status, "baseline": None, "candidate": None,
            "difference": None, "ci_low": None, "ci_high": None, "tolerance": None, "tolerance_kind": None,
            "margin": None, "direction": None, "n": None, "method": "", "notes": note}


def compare_rows(session) -> list[dict]:
    """Gate every claim of the session's run against its baseline: one row per claim metric."""
    rows = []
    baseline = session.baseline
    for claim_id, result in session.results.items():
        claim_base = baseline.claims.get(claim_id)
        if claim_base is None:
            for metric in sorted(result.figures):
                row = _empty_row(claim_id, metric, "no baseline", f"baseline {baseline.name} has no entry for this claim")
                row["candidate"] = result.figures[metric]
                rows.append(row)
            continue
        rows += [v.as_row() for v in session.gate(result)]
        for metric in sorted(claim_base.metrics.keys() - result.figures.keys()):
            row = _empty_row(claim_id, metric, "missing", "the baseline has this figure, the run does not")
            base = claim_base.metrics[metric]
            row.update(baseline=base.aggregate, tolerance=base.tolerance, tolerance_kind=base.tolerance_kind,
                       direction=base.direction)
            rows.append(row)
        for metric in sorted(result.figures.keys() - claim_base.metrics.keys()):
            row = _empty_row(claim_id, metric, "no baseline", "the run has this figure, the baseline does not")
            row["candidate"] = result.figures[metric]
            rows.append(row)
    order = {claim_id: i for i, claim_id in enumerate(session.results)}
    return sorted(rows, key=lambda r: (order[r["claim"]], r["metric"]))


def counts(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row["status"]] = out.get(row["status"], 0) + 1
    return out


# -------------------------------------------------------------------------------------------- format


def _num(x) -> str:
    from idrift.baselines.gate import format_number  # lazy: keeps `idrift --help` free of scipy

    return format_number(x, digits=4)  # table cells: 4 significant digits


def _interval(row: dict) -> str:
    return "-" if row["ci_low"] is None else f"[{_num(row['ci_low'])}, {_num(row['ci_high'])}]"


def _tolerance(row: dict) -> str:
    """The rule in one cell: the allowed side(s) of the difference, and the margin in the metric's units."""
    if row["tolerance"] is None:
        return "-"
    margin = row["margin"] if row["margin"] is not None else row["tolerance"]
    rel = f" ({row['tolerance'] * 100:g}%)" if row["tolerance_kind"] == "relative" else ""
    side = {"higher_is_better": ">= -", "lower_is_better": "<= +", "equal": "+-"}[row["direction"]]
    return f"{side}{_num(margin)}{rel}"


def cells(row: dict) -> list[str]:
    return [row["claim"], row["metric"], _num(row["baseline"]), _num(row["candidate"]), _num(row["difference"]),
            _interval(row), _tolerance(row), row["status"].upper() if row["status"] == "fail" else row["status"]]


def row_notes(rows: list[dict]) -> list[str]:
    """The gate's notes (samples missing on one side, too few pairs, another GPU, ...), one line per
    row. Failures print in full elsewhere; 'missing' and 'no baseline' say all in their status."""
    return [f"{r['claim']} / {r['metric']}: {r['status']}: {r['notes']}"
            for r in rows if r["status"] not in ("fail", "missing", "no baseline") and r["notes"]]


def format_text(header: str, rows: list[dict], mismatches: list[str], notes: list[str], failures: list[str]) -> str:
    table = [list(COLUMNS)] + [cells(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = [header, ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    if failures:
        lines += ["", "regressions:"] + failures
    details = row_notes(rows)
    if details:
        lines += ["", "notes of the gate:"] + [f"  {d}" for d in details]
    if mismatches:
        lines += ["", "provenance differs from the baseline's (numbers may not be comparable):"]
        lines += [f"  {m}" for m in mismatches]
    if notes:
        lines += ["", "notes:"] + [f"  {n}" for n in notes]
    lines += ["", verdict_line(rows)]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")  # metric ids like id_sim[dev-28|portrait] would split a cell


def format_markdown(header: str, rows: list[dict], mismatches: list[str], notes: list[str]) -> str:
    failed = any(r["status"] == "fail" for r in rows)
    lines = [f"## idrift compare: {'REGRESSION' if failed else 'no regression'}", "", header, "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        c = cells(row)
        c[-1] = f"**{c[-1]}**" if row["status"] == "fail" else c[-1]
        lines.append("| " + " | ".join(_md(x) for x in c) + " |")
    details = row_notes(rows)
    if details:
        lines += ["", "<details><summary>Notes of the gate</summary>", ""]
        lines += [f"- {_md(d)}" for d in details] + ["", "</details>"]
    if mismatches:
        lines += ["", "**Provenance differs from the baseline's** (numbers may not be comparable):", ""]
        lines += [f"- {_md(m)}" for m in mismatches]
    if notes:
        lines += ["", "**Notes**", ""] + [f"- {_md(n)}" for n in notes]
    lines += ["", verdict_line(rows)]
    return "\n".join(lines)


def verdict_line(rows: list[dict]) -> str:
    c = counts(rows)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(c.items()))
    return f"{'FAIL' if c.get('fail') else 'PASS'}: {parts or 'nothing compared'}"


# ----------------------------------------------------------------------------------------------- run


def run(args) -> int:
    from idrift.commands.run import load_run, session_from_run

    run_dir = load_run(args.run_dir)  # a bad run directory fails before anything heavy is imported
    session = session_from_run(run_dir, baseline=args.baseline)
    rows = compare_rows(session)
    mismatches = session.provenance_notes()
    baseline = session.baseline
    notes = list(run_dir.notes)
    header = (f"run {run_dir.path} (profile {run_dir.profile}, tier {run_dir.tier}) against baseline "
              f"{baseline.name} ({baseline.path})")
    failures = [v.message() for vs in session.verdicts.values() for v in vs if v.failed]
    if args.format == "json":
        print(json.dumps({
            "run": str(run_dir.path), "run_provenance": run_dir.provenance,
            "baseline": {"name": baseline.name, "path": str(baseline.path), "provenance": baseline.provenance},
            "rows": rows, "counts": counts(rows), "failed": any(r["status"] == "fail" for r in rows),
            "provenance_mismatches": mismatches, "notes": notes,
        }, indent=1, sort_keys=True, allow_nan=False))
    elif args.format == "markdown":
        print(format_markdown(header, rows, mismatches, notes))
    else:
        print(format_text(header, rows, mismatches, notes, failures))
    return 1 if any(r["status"] == "fail" for r in rows) else 0
