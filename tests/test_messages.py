"""Every `--option` that idrift's messages and help texts (not docstrings) name exists: an error that suggests a flag
no parser has (the store once advised `--store`) sends the user nowhere."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import idrift
from idrift.cli import build_parser

PACKAGE = Path(idrift.__file__).parent
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?![\w{-])")
# Options of other tools that idrift's messages tell users to pass to those tools.
OTHER_TOOLS = {
    "--benchmark-compare", "--benchmark-compare-fail", "--benchmark-disable", "--benchmark-json",  # pytest-benchmark
    "--dist", "--tx",  # pytest-xdist
    "--force-reinstall", "--no-deps",  # pip
}


def _mentioned() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):  # messages and help texts; docstrings may use placeholders (--x)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for option in OPTION.findall(node.value):
                    found.setdefault(option, set()).add(path.relative_to(PACKAGE.parent).as_posix())
    return found


def _declared_in_source() -> set[str]:
    """Literal add_argument / addoption names anywhere in idrift (e.g. idrift.baselines.simulate's own parser)."""
    out = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("add_argument", "addoption"):
                out.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return out


def _cli_options(parser: argparse.ArgumentParser) -> set[str]:
    out = set()
    for action in parser._actions:
        out.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _cli_options(sub)
    return out


class _Group:
    def __init__(self):
        self.names: set[str] = set()

    def getgroup(self, *args, **kwargs):
        return self

    def addoption(self, *names, **kwargs):
        self.names.update(names)


def _pytest_options() -> set[str]:
    from idrift import pytest_plugin

    group = _Group()
    pytest_plugin.pytest_addoption(group)
    return group.names


def test_every_option_a_message_names_exists():
    known = _cli_options(build_parser()) | _pytest_options() | _declared_in_source() | OTHER_TOOLS
    mentioned = _mentioned()
    assert len(mentioned) > 30  # the scan finds the messages (it would pass vacuously on a broken regex)
    missing = {option: sorted(where) for option, where in mentioned.items() if option not in known}
    assert not missing, f"messages name options no parser has: {missing}"


def test_the_scan_catches_a_made_up_option():
    assert OPTION.findall("choose a folder you can write to (e.g. --store ./results)") == ["--store"]
    assert "--store" not in _cli_options(build_parser()) | _pytest_options()
    assert OPTION.findall("f-string part --idrift-") == []  # the prefix of f"--idrift-{name}" is no option
