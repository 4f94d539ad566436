"""A run against a baseline as rows: one per claim metric, with the gate's word (idrift.baselines.judge),
the run's own interval and n, and rows for figures only one side has ("missing", "no baseline").
`idrift compare` prints them; `idrift report` tabulates them against the paper's numbers."""

from __future__ import annotations


def _empty_row(claim: str, metric: str, status: str, note: str) -> dict:
    return {"claim": claim, "metric": metric, "status": status, "baseline": None, "candidate": None,
            "difference": None, "ci_low": None, "ci_high": None, "tolerance": None, "tolerance_kind": None,
            "margin": None, "direction": None, "n": None, "baseline_n": None, "method": "", "notes": note}


def _with_figure(row: dict, figure) -> dict:
    """The candidate's own interval and n, and whether the baseline's number lies inside it."""
    row["candidate_ci_low"] = row["candidate_ci_high"] = row["baseline_inside"] = None
    row["candidate_n"] = None if figure is None else figure.n
    if figure is not None and figure.ci is not None:
        row["candidate_ci_low"], row["candidate_ci_high"] = figure.ci
        if row["baseline"] is not None:
            row["baseline_inside"] = bool(figure.ci[0] <= row["baseline"] <= figure.ci[1])
    return row


def compare_rows(session) -> list[dict]:
    """Gate every claim of the session's run against its baseline: one row per claim metric."""
    rows = []
    baseline = session.baseline
    for claim_id, result in session.results.items():
        claim_base = baseline.claims.get(claim_id)
        if claim_base is None:
            for metric in sorted(result.figures):
                row = _empty_row(claim_id, metric, "no baseline",
                                 f"baseline {baseline.name} has no entry for this claim")
                row["candidate"] = result.figures[metric]
                rows.append(_with_figure(row, result.intervals.get(metric)))
            continue
        for v in session.gate(result):
            row = v.as_row()
            row["status"] = v.word
            rows.append(_with_figure(row, result.intervals.get(v.metric)))
        for metric in sorted(claim_base.metrics.keys() - result.figures.keys()):
            row = _empty_row(claim_id, metric, "missing", "the baseline has this figure, the run does not")
            base = claim_base.metrics[metric]
            row.update(baseline=base.aggregate, tolerance=base.tolerance, tolerance_kind=base.tolerance_kind,
                       direction=base.direction, baseline_n=base.n)
            rows.append(_with_figure(row, None))
        for metric in sorted(result.figures.keys() - claim_base.metrics.keys()):
            row = _empty_row(claim_id, metric, "no baseline", "the run has this figure, the baseline does not")
            row["candidate"] = result.figures[metric]
            rows.append(_with_figure(row, result.intervals.get(metric)))
    order = {claim_id: i for i, claim_id in enumerate(session.results)}
    return sorted(rows, key=lambda r: (order[r["claim"]], r["metric"]))
