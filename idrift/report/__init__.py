"""The report of a run: the paper's Tables 1-2 and Figures 2-7, with the paper's numbers beside the run's.

    >>> from idrift.run_folder import load_run
    >>> from idrift.report import write_report
    >>> report = write_report(load_run("runs/ci"), "runs/ci/report")    # doctest: +SKIP
    >>> report.missing                                                 # doctest: +SKIP
    {'figure5_drift.png': 'the run has no figure5_drift claim: ...'}

Writes `report.md` and one PNG per figure into the output folder. Every figure is drawn from the run's
records (re-read from the store) with idrift.stats intervals, its caption in a band of its own saying the
profile, n and what this profile cannot show; the paper's numbers come from baselines/paper.json and are
overlaid where the paper states them. A figure whose data the run lacks is listed under "Missing" in
report.md with the reason and the command that produces it, never dropped silently.

Each PNG carries the run's provenance (PNG tEXt "Description") and its caption ("Comment"), and
report.md ends with the full provenance, so every number shown says where it came from.

Layout: `data` (RunData: records, intervals, the paper's numbers), `captions`, `plot` (matplotlib
helpers, sizes), `tables`, and `figures/`, one module per paper figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from idrift.report.captions import NO_FACE_NOTE
from idrift.report.data import PAPER_BASELINE, TEXT_IDENTITY, MissingData, RunData, hint
from idrift.report.figures import (
    fig2_grid,
    fig3_per_identity,
    fig4_alpha,
    fig5_guidance,
    fig5_steps,
    fig6_tiers,
    fig7_drift,
    text_identity,
)
from idrift.report.figures.fig2_grid import GRID_FILE, LABEL_H, PAD, PANEL, grid_size
from idrift.report.plot import DPI, FIGURE_SIZES, drawn
from idrift.report.tables import caveat_notes, claims_section, paper_section, paper_session, table1, table2

__all__ = ["DPI", "FIGURES", "FIGURE_SIZES", "GRID_FILE", "LABEL_H", "PAD", "PANEL", "MissingData", "Report",
           "RunData", "grid_size", "write_report"]

FIGURES = (  # (file, what it shows, drawing function), in report order
    (GRID_FILE, "Figure 2: reference and outputs per backbone and prompt", fig2_grid.draw),
    (fig3_per_identity.NAME, "Figure 3: per-identity ID_sim, both methods", drawn(fig3_per_identity.build)),
    (fig4_alpha.NAME, "Figure 4: drift for every alpha, and its magnitude", drawn(fig4_alpha.build)),
    (fig5_steps.NAME, "Figure 5 (left): ID_sim over steps, with the schnell-4 point", drawn(fig5_steps.build)),
    (fig5_guidance.NAME, "Figure 5 (right): guidance insensitivity of FLUX.1-schnell", drawn(fig5_guidance.build)),
    (fig6_tiers.NAME, "Figure 6: ID_sim over steps, one panel per prompt tier", drawn(fig6_tiers.build)),
    (fig7_drift.BARS, "Figure 7 (left): drift per prompt tier", drawn(fig7_drift.build_bars)),
    (fig7_drift.HEATMAP, "Figure 7 (right): steps x prompt-tier similarity landscape", drawn(fig7_drift.build_heatmap)),
    (text_identity.NAME, "Beyond the paper: text-identity competition (ID_sim and CLIP-T over steps)",
     drawn(text_identity.build)),
)


@dataclass
class Report:
    out: Path
    written: list[str] = field(default_factory=list)  # file names, in report order
    missing: dict[str, str] = field(default_factory=dict)  # file or table -> why


def _draw_figures(data: RunData, out: Path, report: Report) -> None:
    for name, _, draw in FIGURES:
        try:
            draw(data, out, name)
            report.written.append(name)
        except MissingData as exc:
            reason = str(exc)
            if name == text_identity.NAME and not data.has(TEXT_IDENTITY):
                reason = f"goes beyond the paper (issue #21) and {reason}"
            report.missing[name] = reason
            (out / name).unlink(missing_ok=True)  # a stale PNG from an earlier report must not pass for this run's


def _header(run, data: RunData) -> list[str]:
    doc = run.doc
    lines = [f"# idrift report: {run.path}", "",
             f"- command: `{doc['command']}`",
             f"- profile {run.profile}, tier {run.tier}, ID_sim aggregation '{run.aggregation}'",
             f"- started {doc['started']}, finished {doc.get('finished') or 'not finished'}"
             + ("" if doc.get("complete") else " (incomplete: rerun the command to resume)"),
             f"- paper numbers: {PAPER_BASELINE.name} ({data.paper.provenance.get('source', 'the paper')})"]
    if data.faceless(*data.results):
        lines += ["", (f"**Note:** {NO_FACE_NOTE}. The figures below show what this run measured "
                       "(the pipeline's plumbing and its golden values), not the paper's identity claims; "
                       "those need `--profile real`.")]
    if run.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in run.notes]
    return lines


def _tables(data: RunData) -> list[str]:
    from idrift.baselines.rows import compare_rows

    session = paper_session(data)
    rows = compare_rows(session)
    return ["", "## Claims", "", *claims_section(data, session),
            "", "## The paper, number by number", "",
            ("Each number of baselines/paper.json beside this run's value, its 95% interval and n, whether the "
             "paper's number lies inside the interval, and the word `idrift compare RUN --baseline paper` gives it."),
            "", *paper_section(rows, data.paper),
            "", "## Table 1: backbone swap", "", *table1(data), "",
            ("Run values: the claims table1_backbone_swap, table1_dev4_diagnostic and latency, each with its 95% "
             "interval (ID_sim, LPIPS: clustered bootstrap; latency: bootstrap over timed rounds). \"not measured\": "
             "not in this run; \"-\": not stated by the paper. The caveat column says which columns this profile "
             "makes meaningless:"), "", *caveat_notes(data),
            "", "## Table 2: ID_sim per prompt", "", *table2(data)]


def write_report(run, out: str | Path, paper=None) -> Report:
    """Write report.md and the figures of `run` (an idrift.run_folder.Run) into `out`."""
    from idrift.baselines.io import load_baseline

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = RunData(run, paper if paper is not None else load_baseline(PAPER_BASELINE))
    report = Report(out=out)
    _draw_figures(data, out, report)
    for table, claim_id in (("Table 1", "table1_backbone_swap"), ("Table 2", "table2_id_sim_by_prompt")):
        if not data.has(claim_id):
            report.missing[table] = "paper numbers only: " + hint(run, claim_id)
    lines = _header(run, data) + _tables(data) + ["", "## Figures"]
    for name, title, _ in FIGURES:
        if name in report.written:
            lines += ["", f"### {title}", "", f"![{title}]({name})"]
    if report.missing:
        lines += ["", "## Missing: not drawn, and why", "", "Every figure or table this run could not draw:", ""]
        lines += [f"- **{name}**: {why}" for name, why in report.missing.items()]
    lines += ["", "## Provenance", "", "Every number above comes from this run:", "", "```json",
              json.dumps(run.provenance, indent=1, sort_keys=True), "```", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return report
