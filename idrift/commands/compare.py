"""`idrift compare RUN_DIR --baseline NAME_OR_PATH`: gate a run against a baseline.

    idrift compare runs/ci --baseline tiny-cpu                      # a table for the terminal
    idrift compare runs/ci --baseline tiny-cpu --format markdown >> "$GITHUB_STEP_SUMMARY"
    idrift compare runs/ci --baseline baselines/h100.json --format json
    idrift compare runs/gpu --baseline h200-synthetic --format github-action-benchmark --direction smaller \
        > smaller.json

The run's claims are re-evaluated from its store, then every figure the baseline holds is gated
exactly as `pytest benchmarks` gates it (BenchmarkSession.gate: paired bootstrap where both sides
have per-sample values, a band around aggregate-only numbers, the ratio gate for the speed-up,
absolute latency only on the same GPU model). One row per claim metric: baseline, candidate,
difference, interval, tolerance, verdict. Metrics only one side has get a row too ('missing':
the baseline has it, the run does not; 'no baseline': the other way round); neither fails.
Provenance differences (profile, GPU, weights, key package versions) are listed.

Words (idrift.verdicts, docs/verdicts.md): each row and each claim is PASS, FAIL, INCONCLUSIVE or
NOT JUDGEABLE, the words `idrift run`, `idrift report` and pytest print. Against numbers of another
profile (the paper's), a tiny or synthetic run's identity and LPIPS rows are NOT JUDGEABLE; rows
that cannot move on the profile (ID_sim 0 of faceless images on both sides) are 'not informative'
and not counted as passes. Every row gives the run's value with its own interval and n and whether
the baseline's number lies inside that interval (the paper, number by number).

`--format github-action-benchmark` writes the JSON list that benchmark-action/github-action-benchmark's
custom tools read: one {name, unit, value, range, extra} per figure of the run whose declared direction
(idrift.verdicts.METRICS) is `--direction`'s: `bigger` (ID_sim, speed-up: the tool customBiggerIsBetter)
or `smaller` (latency, LPIPS: customSmallerIsBetter). A workflow writes both, one command each; figures
whose direction is "equal" (bitwise checks, counts) are in neither. `range` is the figure's own 95 %
interval, `extra` its n, the gate's word and the baseline's value.

Exit status: 1 on a FAIL (a regression or a refuted claim); INCONCLUSIVE is 0 unless --strict;
2 on a usage error.
"""

from __future__ import annotations

import json

FORMATS = ("text", "markdown", "json", "github-action-benchmark")
# --direction -> the idrift.verdicts direction whose figures go into that list, and the action's tool.
DIRECTIONS = {"bigger": ("higher_is_better", "customBiggerIsBetter"),
              "smaller": ("lower_is_better", "customSmallerIsBetter")}
COLUMNS = ("claim", "metric", "baseline", "candidate", "candidate CI", "n", "inside", "difference", "interval",
           "tolerance", "verdict")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="gate a run directory against a baseline (exit 1 on regression)",
        description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `idrift run --out`")
    parser.add_argument("--baseline", required=True, metavar="NAME_OR_PATH",
                        help="baseline name in baselines/ (tiny-cpu, paper, ...) or a path to a .json file")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="text (terminal), markdown (CI job summary), json (machines) or github-action-benchmark "
                             "(the list github-action-benchmark's custom tools read; needs --direction). Default text")
    parser.add_argument("--direction", choices=tuple(DIRECTIONS), default=None,
                        help="with --format github-action-benchmark: the figures where bigger is better (ID_sim, "
                             "speed-up; tool customBiggerIsBetter) or smaller (latency, LPIPS; customSmallerIsBetter)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 on INCONCLUSIVE too (the interval straddles the bound: more samples needed)")
    parser.set_defaults(func=run)


def counts(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row["status"]] = out.get(row["status"], 0) + 1
    return out


# -------------------------------------------------------------------------------------------- format


def _num(x) -> str:
    from idrift.baselines.verdict import format_number  # lazy: keeps `idrift --help` free of scipy

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


def _candidate_ci(row: dict) -> str:
    if row.get("candidate_ci_low") is None:
        return "-"
    return f"[{_num(row['candidate_ci_low'])}, {_num(row['candidate_ci_high'])}]"


def cells(row: dict) -> list[str]:
    inside = {True: "yes", False: "no", None: "-"}[row.get("baseline_inside")]
    n = "-" if row.get("candidate_n") is None else str(row["candidate_n"])
    return [row["claim"], row["metric"], _num(row["baseline"]), _num(row["candidate"]), _candidate_ci(row), n, inside,
            _num(row["difference"]), _interval(row), _tolerance(row), row["status"]]


def row_notes(rows: list[dict]) -> list[str]:
    """The gate's notes (samples missing on one side, too few pairs, another GPU, ...): rows that share
    one status and note share one line, naming the first rows and counting all of them ("(x68)").
    Failures print in full elsewhere; 'missing' and 'no baseline' say all in their status."""
    shared: dict[str, list[str]] = {}
    for r in rows:
        if r["status"] in ("FAIL", "missing", "no baseline") or not r["notes"]:
            continue
        shared.setdefault(f"{r['status']}: {r['notes']}", []).append(f"{r['claim']} / {r['metric']}")
    out = []
    for reason, where in shared.items():
        shown = ", ".join(where[:4]) + (", ..." if len(where) > 4 else "")
        out.append(f"{shown}: {reason}" + (f" (x{len(where)})" if len(where) > 1 else ""))
    return out


def format_text(header: str, rows: list[dict], mismatches: list[str], notes: list[str], failures: list[str],
                claim_lines: list[str] = (), strict: bool = False) -> str:
    table = [list(COLUMNS)] + [cells(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = [header, ""]
    if claim_lines:
        lines += ["claims:"] + [f"  {line}" for line in claim_lines] + [""]
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
    lines += ["", verdict_line(rows, claim_lines, strict)]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")  # metric ids like id_sim[dev-28|portrait] would split a cell


def format_markdown(header: str, rows: list[dict], mismatches: list[str], notes: list[str],
                    claim_lines: list[str] = (), strict: bool = False) -> str:
    failed = any(r["status"] == "FAIL" for r in rows)
    lines = [f"## idrift compare: {'REGRESSION' if failed else 'no regression'}", "", header, ""]
    if claim_lines:
        lines += ["**Claims**", ""] + [f"- {_md(line)}" for line in claim_lines] + [""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        c = cells(row)
        c[-1] = f"**{c[-1]}**" if row["status"] in ("FAIL", "INCONCLUSIVE") else c[-1]
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
    lines += ["", verdict_line(rows, claim_lines, strict)]
    return "\n".join(lines)


def claim_words(claim_lines: list[str]) -> list[str]:
    """The words of 'claim: WORD (parts)' lines."""
    from idrift.verdicts import WORDS

    return [next(w for w in WORDS if line.split(": ", 1)[1].startswith(w)) for line in claim_lines]


def verdict_line(rows: list[dict], claim_lines: list[str] = (), strict: bool = False) -> str:
    """FAIL (exit 1); else INCONCLUSIVE, PASS or NOT JUDGEABLE; then the count of every row's word.
    Not-informative rows are counted apart, never as passes."""
    from idrift.verdicts import exit_status

    c = counts(rows)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(c.items()))
    words = [r["status"] for r in rows] + claim_words(list(claim_lines))
    if exit_status(words, strict=strict):
        word = "FAIL"
    else:  # nothing failed: INCONCLUSIVE if something could not be decided, else PASS if something passed
        word = next((w for w in ("INCONCLUSIVE", "PASS") if w in words), "NOT JUDGEABLE")
    return f"{word}: {parts or 'nothing compared'}"


UNITS = (("latency_s", "s"), ("speedup", "x"), ("compile_s", "s"), ("blocks_compile_s", "s"),
         ("gpu_peak_gb", "GB"), ("lpips", "LPIPS"), ("detection_rate", "fraction"), ("id_sim", "cosine"))


def unit_of(metric: str) -> str:
    return next((unit for prefix, unit in UNITS if metric.startswith(prefix)), "")


def github_action_benchmark(rows: list[dict], direction: str) -> list[dict]:
    """The figures of `rows` whose declared direction is `direction`'s (DIRECTIONS), as
    github-action-benchmark's custom tools read them: name, unit, value, range (the run's interval)
    and extra (n, the gate's word, the baseline's value)."""
    from idrift.verdicts import direction_of

    wanted = DIRECTIONS[direction][0]
    out = []
    for row in rows:
        if row["candidate"] is None or direction_of(row["metric"]) != wanted:
            continue
        entry = {"name": f"{row['claim']} / {row['metric']}", "unit": unit_of(row["metric"]),
                 "value": float(row["candidate"])}
        if row.get("candidate_ci_low") is not None:
            entry["range"] = f"95% interval [{_num(row['candidate_ci_low'])}, {_num(row['candidate_ci_high'])}]"
        n = row.get("candidate_n")
        extra = [f"verdict: {row['status']}", f"n: {n if n is not None else '-'}"]
        if row["baseline"] is not None:
            extra.append(f"baseline: {_num(row['baseline'])}")
        entry["extra"] = "\n".join(extra)
        out.append(entry)
    return out


# ----------------------------------------------------------------------------------------------- run


def run(args) -> int:
    from idrift.baselines.rows import compare_rows
    from idrift.errors import IdriftError
    from idrift.run_folder import load_run
    from idrift.session import BenchmarkSession
    from idrift.verdicts import exit_status

    direction = getattr(args, "direction", None)
    if (args.format == "github-action-benchmark") != (direction is not None):
        raise IdriftError("--format github-action-benchmark needs --direction bigger or smaller (one list per "
                          "direction: run the command twice), and --direction goes only with that format")
    run_dir = load_run(args.run_dir)  # a bad run directory fails before anything heavy is imported
    session = BenchmarkSession.from_run(run_dir, baseline=args.baseline)
    rows = compare_rows(session)
    from idrift.counted import counted

    mismatches = counted(session.provenance_notes())
    baseline = session.baseline
    notes = counted(run_dir.notes)
    header = (f"run {run_dir.path} (profile {run_dir.profile}, tier {run_dir.tier}) against baseline "
              f"{baseline.name} ({baseline.path})")
    failures = [v.message() for vs in session.verdicts.values() for v in vs if v.failed]
    claim_lines = session_claim_lines(session)
    strict = getattr(args, "strict", False)
    words = [r["status"] for r in rows] + claim_words(claim_lines)
    status = exit_status(words, strict=strict)
    if args.format == "json":
        print(json.dumps({
            "run": str(run_dir.path), "run_provenance": run_dir.provenance,
            "baseline": {"name": baseline.name, "path": str(baseline.path), "provenance": baseline.provenance},
            "rows": rows, "counts": counts(rows), "failed": bool(status),
            "claims": dict(zip(session.outcomes, claim_words(claim_lines))), "claim_lines": claim_lines,
            "provenance_mismatches": mismatches, "notes": notes,
        }, indent=1, sort_keys=True, allow_nan=False))
    elif args.format == "github-action-benchmark":
        print(json.dumps(github_action_benchmark(rows, direction), indent=1, allow_nan=False))
    elif args.format == "markdown":
        print(format_markdown(header, rows, mismatches, notes, claim_lines, strict))
    else:
        print(format_text(header, rows, mismatches, notes, failures, claim_lines, strict))
    return status


def session_claim_lines(session) -> list[str]:
    """Each claim's line, exactly as pytest and `idrift run` print it (idrift.evaluate.claim_line)."""
    from idrift.evaluate import claim_line

    return [claim_line(session.results[cid].claim, outcomes, session.options.tier)
            for cid, outcomes in session.outcomes.items()]
