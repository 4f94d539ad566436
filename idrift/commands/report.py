"""`idrift report RUN_DIR [--out DIR]`: the paper's tables and figures, from a run.

Writes DIR/report.md (default RUN_DIR/report) and one PNG per figure (idrift.report): Tables 1-2 with
the run's values and intervals beside the paper's numbers, the image grid (Figure 2), per-identity
ID_sim (Figure 3), drift per alpha (Figure 4), drift over steps and guidance flatness (Figure 5), one
panel per prompt tier (Figure 6), drift bars and the steps x tier landscape (Figure 7), and the
text-identity competition beyond the paper. Each figure's caption says the profile, n and what the
profile cannot show. Figures the run has no data for are listed under "Missing" in report.md.
"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="write report.md and figures (PNG) from a run directory",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `idrift run --out`")
    parser.add_argument("--out", metavar="DIR", default=None, help="output folder (default RUN_DIR/report)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from idrift.report import write_report
    from idrift.run_folder import load_run

    run_dir = load_run(args.run_dir)
    _refuse_damaged_images(run_dir)  # idrift.store trusts nothing on disk it did not check
    out = Path(args.out) if args.out else run_dir.path / "report"
    report = write_report(run_dir, out)
    print(f"wrote {out / 'report.md'} and {len(report.written)} figure(s): {', '.join(report.written) or 'none'}")
    for name, why in report.missing.items():
        print(f"missing {name}: {why}")
    return 0


def _refuse_damaged_images(run_dir) -> None:
    """A run whose stored images were truncated or replaced: one line naming the first, not a PIL error."""
    from idrift.errors import IdriftError

    store = run_dir.open_store()
    if store is None:
        return
    try:
        damaged = store.damaged_images()
    finally:
        store.close()
    if damaged:
        more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
        raise IdriftError(f"image {damaged[0]}{more}; rerun the run's `idrift run ... --out {run_dir.path}` "
                          "(it regenerates damaged samples), then report again")
