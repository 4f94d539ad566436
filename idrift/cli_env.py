"""The `IDRIFT_*` environment variables for the `idrift` command line, as for the pytest options.

Each variable sets the default of the CLI option it stands for, so an option given on the command line
wins over the variable. The values are read with idrift.env's parsers (flags: 1/true/yes/on, 0/false/no/off);
a bad value is one line naming the variable and the option, reported only when the sub-command that has
the option runs (a bad IDRIFT_PROFILE does not break `idrift compare`).

    IDRIFT_PROFILE=real idrift run --out runs/a            # as --profile real
    IDRIFT_PROFILE=real idrift run --profile tiny ...      # --profile tiny wins
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from idrift.env import EnvError, env_flag, env_int

# option dest -> the variable pytest's --idrift-<option> reads (idrift/pytest_plugin.py).
ENV_OF_DEST = {
    "profile": "IDRIFT_PROFILE",
    "tier": "IDRIFT_TIER",
    "identities": "IDRIFT_IDENTITIES",
    "require_real": "IDRIFT_REQUIRE_REAL",
    "strict": "IDRIFT_STRICT",
    "accelerate": "IDRIFT_ACCELERATE",
    "step_cache": "IDRIFT_STEP_CACHE",
    "memory": "IDRIFT_MEMORY",
    "batch_size": "IDRIFT_BATCH_SIZE",
    "baseline": "IDRIFT_BASELINE",
    "rounds": "IDRIFT_ROUNDS",
    "warmup_rounds": "IDRIFT_WARMUP_ROUNDS",
}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _value(action: argparse.Action, name: str, text: str, env: Mapping[str, str]):
    """The option's value from the variable's text, or EnvError naming both."""
    option = action.option_strings[-1]
    if isinstance(action, argparse._StoreTrueAction):
        return env_flag(name, default=action.default, env=env)
    if action.type is int:
        return env_int(name, default=action.default, minimum=1, env=env)
    if action.choices is not None:
        if text not in action.choices:
            raise EnvError(f"environment variable {name}={text!r} (for {option}): expected one of "
                           f"{', '.join(action.choices)}; fix it or unset it")
        return text
    if action.type is not None:
        try:
            return action.type(text)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise EnvError(f"environment variable {name}={text!r} (for {option}): {exc}; fix it or unset it") from None
    return text


def apply_env_defaults(parser: argparse.ArgumentParser,
                       env: Mapping[str, str] | None = None) -> dict[str, list[tuple[list[str], str]]]:
    """Set each sub-command option's default from its variable; mention the variable in the option's help.

    Returns {sub-command: [(option strings, error line)]} for the variables whose value the option does
    not accept; `env_error` picks the one that matters for a command line."""
    env = os.environ if env is None else env
    errors: dict[str, list[tuple[list[str], str]]] = {}
    for command, sub in _subparsers(parser).items():
        for action in sub._actions:
            name = ENV_OF_DEST.get(action.dest)
            if name is None or not action.option_strings:
                continue
            if action.help and f"env {name}" not in action.help:
                action.help = f"{action.help} [env {name}]"
            text = env.get(name, "").strip()
            if not text:
                continue
            try:
                action.default = _value(action, name, text, env)
            except EnvError as exc:
                errors.setdefault(command, []).append((list(action.option_strings), str(exc)))
                continue
            action.required = False  # --baseline: the variable gives it
    return errors


def env_error(errors: dict[str, list[tuple[list[str], str]]], command: str, argv: list[str]) -> str | None:
    """The first bad variable of `command` whose option the command line does not give (given: it wins)."""
    for options, message in errors.get(command, []):
        if not any(arg == opt or arg.startswith(opt + "=") for arg in argv for opt in options):
            return message
    return None
