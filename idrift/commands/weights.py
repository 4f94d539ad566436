"""`idrift weights check`: is every real-profile weight where idrift will look, and intact?

Prints one row per component (found or missing, path, fingerprint) and, for each problem, one line
naming the component, the path, what is wrong and the option / environment variable that sets it.
Reads file names, JSON configs and safetensors headers, and opens every .bin/.pth (torch.load with
mmap) and .onnx file (idrift.models.verify): a file is "found" only when it also loads.
Exit status: 0 when everything is found, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json

from idrift.models.paths import INFU_VARIANTS, WEIGHT_OPTIONS, resolve_weight_paths
from idrift.models.weights_check import check_weights


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("weights", help="inspect the real-profile weights",
                                   description="Inspect the real-profile weights (never downloads).")
    actions = parser.add_subparsers(dest="weights_command", metavar="ACTION")
    actions.required = True
    check = actions.add_parser(
        "check", help="check every real-profile weight folder and file (layout, configs, safetensors headers)",
        description=__doc__.splitlines()[0],
        epilog="Each option overrides its environment variable, which overrides the default.")
    for opt in WEIGHT_OPTIONS:
        kwargs = {"choices": INFU_VARIANTS} if opt.field == "infu_variant" else {"metavar": "PATH"}
        check.add_argument(opt.cli_option, dest=opt.field, default=None,
                           help=f"{opt.help} [env {opt.env}; pytest {opt.option}]", **kwargs)
    check.add_argument("--json", action="store_true", help="print the statuses as JSON instead of a table")
    check.set_defaults(func=run_check)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def run_check(args: argparse.Namespace) -> int:
    paths = resolve_weight_paths({opt.field: getattr(args, opt.field, None) for opt in WEIGHT_OPTIONS})
    from idrift.models.verify import verify_statuses

    statuses = verify_statuses(check_weights(paths, option_prefix="--"))  # "found" means it also loads
    if args.json:
        print(json.dumps([{"component": s.component, "found": s.found, "path": s.path, "fingerprint": s.fingerprint,
                           "problems": list(s.problems), "option": s.option, "env": s.env} for s in statuses],
                         indent=2))
    else:
        rows = [["component", "status", "fingerprint", "path", "set with"]]
        for s in statuses:
            corrupt = any(": corrupt: " in line for line in s.problems)
            state = "found" if s.found else "CORRUPT" if corrupt else "MISSING"
            rows.append([s.component, state, s.fingerprint or "-", s.path, "" if s.found else f"{s.option} / {s.env}"])
        print(_table(rows))
        print(f"InfiniteYou variant: {paths.infu_variant}")
        problems = [line for s in statuses for line in s.problems]
        if problems:
            print(f"\n{len(problems)} problem{'s' if len(problems) > 1 else ''}:")
            for line in problems:
                print(f"  {line}")
        else:
            print("\nall real-profile weights found")
    return 0 if all(s.found for s in statuses) else 1
