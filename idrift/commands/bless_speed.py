"""`idrift bless-speed SUMMARY --name NAME`: record a fast-path summary in a baseline's `fast_paths` entry.

    idrift bless-speed .idrift/speed-summary.json --name h100-synthetic --yes

SUMMARY is the JSON benchmarks/test_speed.py writes (IDRIFT_SPEED_OUT, default .idrift/speed-summary.json):
for a run whose figures should become the baseline after the fact (on the GPU runner itself, pass
--idrift-update-baselines to that pytest run instead). Metrics the summary did not measure keep their old
entries; the diff is printed first and the file is written after a 'y' or with --yes. The entry's
provenance is the summary's; summaries older than the `seeds` and `command` fields need --seeds and
--command (say truthfully what produced them).
"""

from __future__ import annotations

import json
from pathlib import Path

from idrift.commands.bless import confirm, target_path
from idrift.errors import IdriftError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bless-speed", help="record a test_speed summary in a baseline's fast_paths entry (prints the diff first)",
        description=__doc__.splitlines()[0])
    parser.add_argument("summary", metavar="SUMMARY", help="JSON written by benchmarks/test_speed.py")
    parser.add_argument("--name", required=True, metavar="NAME_OR_PATH",
                        help="baseline name (baselines/NAME.json) or a path ending in .json; it must exist")
    parser.add_argument("--seeds", default=None, metavar="N,...", help="seeds of the measured specs, if the summary lacks them")
    parser.add_argument("--command", dest="summary_command", default=None,
                        help="the command that produced the summary, if it lacks it")
    parser.add_argument("--yes", action="store_true", help="write without asking (CI)")
    parser.set_defaults(func=run)


def load_summary(path: str) -> dict:
    file = Path(path)
    try:
        summary = json.loads(file.read_text())
    except FileNotFoundError:
        raise IdriftError(f"{file}: no such file; give the JSON benchmarks/test_speed.py wrote "
                          "(IDRIFT_SPEED_OUT, default .idrift/speed-summary.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IdriftError(f"{file}: not a readable JSON summary ({exc}); rerun benchmarks/test_speed.py") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("rows"), list) or not isinstance(summary.get("provenance"), dict):
        raise IdriftError(f"{file}: not a test_speed summary (it needs 'rows' and 'provenance'); rerun "
                          "benchmarks/test_speed.py")
    return summary


def run(args) -> int:
    from idrift.baselines.speed import update_speed_baseline

    summary = load_summary(args.summary)
    path = target_path(args.name)
    if not path.exists():
        raise IdriftError(f"{path}: no such baseline; the fast_paths entry goes into an existing one "
                          "(make it with --idrift-update-baselines or `idrift bless` first)")
    provenance = dict(summary["provenance"], blessed_from=str(Path(args.summary).resolve()))
    if args.seeds is not None:
        try:
            provenance["seeds"] = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            raise IdriftError(f"--seeds {args.seeds!r}: give whole numbers separated by commas, e.g. 0,1") from None
    if args.summary_command is not None:
        provenance["command"] = args.summary_command
    missing = [k for k in ("seeds", "command") if k not in provenance]
    if missing:
        raise IdriftError(f"{args.summary}: the summary does not record {' and '.join(missing)}; pass "
                          + " and ".join(f"--{k}" for k in missing) + " (what produced it)")
    for line in update_speed_baseline(path, summary, provenance, write=False):
        print(line)
    if not (args.yes or confirm(f"write {path}?")):
        raise IdriftError(f"{path} not written: confirm at the prompt, or pass --yes")
    update_speed_baseline(path, summary, provenance)
    print(f"wrote {path}")
    return 0
