"""The house's size rules, checked on the source: no module in idrift/ over 450 lines, no function over 80
lines. (Line length is ruff's E501, line-length 120 in pyproject.toml.)"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "idrift"
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80


def size_violations() -> list[str]:
    """One line per module over MAX_FILE_LINES and per function over MAX_FUNCTION_LINES (decorators excluded)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(REPO).as_posix()
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_FILE_LINES:
            found.append(f"{name}: {lines} lines (limit {MAX_FILE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}:{node.lineno}: {node.name} is {length} lines (limit {MAX_FUNCTION_LINES})")
    return found


def test_no_module_or_function_over_the_limits():
    over = size_violations()
    assert over == [], "split these along a real seam:\n" + "\n".join(over)


def test_the_check_sees_a_long_module_and_a_long_function(tmp_path, monkeypatch):
    """The check can fail: a 451-line module and an 81-line function are both reported."""
    package = tmp_path / "idrift"
    package.mkdir()
    (package / "long.py").write_text("x = 1\n" * (MAX_FILE_LINES + 1))
    body = "".join(f"    y{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (package / "fn.py").write_text("def f():\n" + body)
    (package / "ok.py").write_text("def g():\n" + "".join(body.splitlines(keepends=True)[1:]))
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert size_violations() == [
        f"idrift/fn.py:1: f is {MAX_FUNCTION_LINES + 1} lines (limit {MAX_FUNCTION_LINES})",
        f"idrift/long.py: {MAX_FILE_LINES + 1} lines (limit {MAX_FILE_LINES})",
    ]
