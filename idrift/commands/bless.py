"""`idrift bless RUN_DIR --name NAME`: make a run the new baseline, showing what changes first.

    idrift bless runs/ci --name tiny-cpu            # baselines/tiny-cpu.json; asks before writing
    idrift bless runs/h100 --name baselines/h100-synthetic.json --yes

The baseline is built by the code `pytest --idrift-update-baselines` uses
(idrift.baselines.update.baseline_from_session: tolerance rules, per-sample values, provenance),
from the run's results re-evaluated from its store. Claims the run did not measure keep their old
entries. The diff against the file it replaces is always printed; the file is written only after
a 'y' at the prompt or with --yes (without a terminal and without --yes nothing is written and the
exit status is 2). The paper's numbers (baselines/paper.json) are never overwritten. A run made with a
lossy pipeline (`idrift run --accelerate lossy`, `--step-cache`, `--memory offload-8bit`) is refused
unless --allow-lossy is given; the baseline's provenance then says lossy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from idrift.errors import IdriftError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bless", help="write a baseline from a run directory (prints the diff first)",
        description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `idrift run --out`")
    parser.add_argument("--name", required=True, metavar="NAME_OR_PATH",
                        help="baseline name (writes baselines/NAME.json) or a path ending in .json")
    parser.add_argument("--yes", action="store_true", help="write without asking (CI)")
    parser.add_argument("--allow-lossy", action="store_true",
                        help="bless a run made with a lossy pipeline (fp8, step cache, 8-bit weights)")
    parser.set_defaults(func=run)


def target_path(name: str) -> Path:
    """NAME -> baselines/NAME.json in the repository; a path (separator or .json) as given."""
    if name.endswith(".json") or os.sep in name or (os.altsep and os.altsep in name):
        return Path(name)
    if not name or name.startswith("."):
        raise IdriftError(f"--name {name!r} is not a usable baseline name; give a name like tiny-cpu or a .json path")
    from idrift.baselines.io import baselines_dir

    return baselines_dir() / f"{name}.json"


def confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def run(args) -> int:
    from idrift.run_folder import load_run
    from idrift.session import BenchmarkSession

    run_dir = load_run(args.run_dir)  # a bad run directory fails before anything heavy is imported
    path = target_path(args.name)
    if path.resolve() == target_path("paper").resolve():
        raise IdriftError("not overwriting baselines/paper.json: it holds the paper's numbers; "
                          "bless under another name")

    from idrift.baselines.io import diff_baselines, load_baseline, write_baseline
    from idrift.baselines.update import baseline_from_session

    session = BenchmarkSession.from_run(run_dir)
    session.options.allow_lossy_baselines = args.allow_lossy
    new = baseline_from_session(session, name=path.stem, description=f"measured on the {run_dir.profile} profile "
                                f"by `{run_dir.doc['command']}`")
    # baseline_from_session writes the pytest command into the provenance; this one came from a run.
    new.provenance["command"] = run_dir.doc["command"]
    new.provenance["blessed_from"] = str(run_dir.path.resolve())

    old = load_baseline(path) if path.exists() else None  # an unreadable old file is an error, not replaced blindly
    if old is not None:
        kept = sorted(old.claims.keys() - new.claims.keys())
        for claim_id in kept:  # claims this run did not measure keep their old entries
            new.claims[claim_id] = old.claims[claim_id]
        changes = diff_baselines(old, new)
        print(f"{path}: {len(changes)} change(s) against the current file"
              + (f"; kept unchanged (not in this run): {', '.join(kept)}" if kept else ""))
    else:
        changes = [f"+ claim {c} ({len(m.metrics)} metrics)" for c, m in sorted(new.claims.items())]
        print(f"{path}: new baseline with {len(new.claims)} claim(s)")
    for line in changes:
        print(f"  {line}")
    for note in run_dir.notes:
        print(f"note: {note}")
    if old is not None and not changes:
        print("nothing to write: the baseline already holds these numbers")
        return 0
    if not (args.yes or confirm(f"write {path}?")):
        raise IdriftError(f"{path} not written: confirm at the prompt, or pass --yes")
    write_baseline(new, path)
    print(f"wrote {path}")
    return 0
