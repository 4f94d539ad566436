"""Environment switches and numbers, read like the command-line options they stand for.

    IDRIFT_REQUIRE_REAL=1 / true / yes / on       -> True
    IDRIFT_REQUIRE_REAL=0 / false / no / off / "" -> False (unset: the option's default)
    IDRIFT_REQUIRE_REAL=maybe                     -> EnvError naming the variable and what it accepts

Any other text is an error rather than a guess: reading "false" as true (a non-empty string) once let a
lossy run rewrite a baseline.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from idrift.errors import IdriftError

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


class EnvError(IdriftError):
    """An environment variable holds a value its option does not accept."""


def env_flag(name: str, default: bool = False, env: Mapping[str, str] | None = None) -> bool:
    """The switch `name` as a bool: TRUE / FALSE spellings (any case, spaces ignored); unset: `default`."""
    env = os.environ if env is None else env
    if name not in env:
        return default
    value = env[name].strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise EnvError(f"environment variable {name}={env[name]!r}: expected one of 1/true/yes/on or 0/false/no/off; "
                   f"set it to one of those or unset it")


def env_int(name: str, default: int, minimum: int | None = None, env: Mapping[str, str] | None = None) -> int:
    """The whole number in `name`; unset or empty: `default`."""
    env = os.environ if env is None else env
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise EnvError(f"environment variable {name}={env[name]!r}: expected a whole number{bound}; "
                       "fix it or unset it")
    return value


def env_choice(name: str, choices: tuple[str, ...], default: str, env: Mapping[str, str] | None = None) -> str:
    """The value of `name`, which must be one of `choices`; unset or empty: `default`. The error names
    the option the variable stands for, as the option's own error does (IDRIFT_X -> --idrift-x)."""
    env = os.environ if env is None else env
    text = env.get(name, "").strip()
    if not text:
        return default
    if text not in choices:
        option = "--" + name.lower().replace("_", "-")
        raise EnvError(f"{option} must be one of {', '.join(choices)}, got {text!r} [env {name}]; "
                       f"fix the environment variable {name} or unset it")
    return text
