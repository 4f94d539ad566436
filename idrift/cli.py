"""The `idrift` console script. Each sub-command lives in `idrift/commands/<name>.py` and exposes
`register(subparsers)`, which adds its parser and sets `func(args) -> int`. Options read their
`IDRIFT_*` environment variable as the pytest options do (idrift/cli_env.py); the command line wins."""

from __future__ import annotations

import argparse
import importlib
import sys

from idrift.errors import IdriftError

# Sub-command modules, in the order `idrift --help` lists them.
COMMAND_MODULES = ("run", "score", "export", "compare", "report", "bless", "weights", "data", "identity", "merge")


DESCRIPTION = ("Run the claims of \"Less Is More\" (identity drift in InfiniteYou on FLUX), gate them against "
               "baselines and report them. Options also read their IDRIFT_* environment variable (shown as "
               "[env ...] in each command's --help); an option on the command line wins.")


def package_version() -> str:
    """The installed distribution's version (importlib.metadata); the source tree's when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("idrift")
    except PackageNotFoundError:
        from idrift import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idrift", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"idrift {package_version()}")
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
    from idrift.cli_env import apply_env_defaults, env_error

    parser = build_parser()
    env_errors = apply_env_defaults(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    bad_env = env_error(env_errors, args.command, argv)
    if bad_env:
        print(f"idrift {args.command}: error: {bad_env}", file=sys.stderr)
        return 2
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
        print(f"idrift {args.command}: interrupted; finished samples are kept, rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
