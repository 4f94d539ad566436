"""The `idrift` console script. Each sub-command lives in `idrift/commands/<name>.py` and exposes
`register(subparsers)`, which adds its parser and sets `func(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import sys

from idrift.errors import IdriftError

# Sub-command modules, in the order `idrift --help` lists them.
COMMAND_MODULES = ("run", "compare", "report", "bless", "bless-speed", "weights", "data", "identity", "merge")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idrift", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"idrift.commands.{name.replace('-', '_')}")
        except ModuleNotFoundError as exc:
            if exc.name == f"idrift.commands.{name.replace('-', '_')}":
                continue  # not written yet
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except IdriftError as exc:
        # User errors get one clear line, not a traceback.
        print(f"idrift {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A path the user gave cannot be created or written (--out under a file, a read-only folder,
        # a full disk): the OS message names the path; no traceback.
        print(f"idrift {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"idrift {args.command}: interrupted; finished samples are kept, rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
