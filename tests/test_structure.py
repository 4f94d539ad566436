"""The house's import rules, checked on the source: no import circles among idrift's modules (imports
inside functions count: a lazy import that closes a circle is still a circle), no module below the front
ends imports one, and planning a run (`idrift.runner`) does not load torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "idrift"


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The idrift modules `path` imports at run time, anywhere in the file (TYPE_CHECKING blocks left out)."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
               for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("idrift"):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("idrift"))
    return {name for name in found if name in modules}


def import_circles() -> list[list[str]]:
    modules = module_names()
    graph = {name: imports_of(path, modules) - {name} for name, path in modules.items()}
    circles, state = [], {}

    def visit(name: str, stack: list[str]) -> None:
        state[name] = "open"
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                circles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    return circles


def test_no_import_circles():
    assert import_circles() == []


def test_the_walk_sees_a_lazy_import_circle(tmp_path, monkeypatch):
    """The check can fail: two modules importing each other inside functions form a circle."""
    package = tmp_path / "idrift"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from idrift import b\n")
    (package / "b.py").write_text("def g():\n    from idrift.a import f\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from idrift import a\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert import_circles() == [["idrift.a", "idrift.b", "idrift.a"]]


# The front ends sit on top: the CLI's commands and the pytest plugin drive the rest, and nothing below imports them.
FRONT_ENDS = ("idrift.cli", "idrift.commands", "idrift.pytest_plugin", "idrift.pytest_options")


def _is_front_end(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FRONT_ENDS)


def upward_imports() -> list[str]:
    """'module -> front end' for every module below the front ends that imports one."""
    modules = module_names()
    return sorted(f"{name} -> {target}" for name, path in modules.items() if not _is_front_end(name)
                  for target in imports_of(path, modules) if _is_front_end(target))


def test_no_module_imports_a_front_end():
    assert upward_imports() == []


def test_the_walk_sees_an_upward_import(tmp_path, monkeypatch):
    """The check can fail: a report module reaching into a command is reported."""
    package = tmp_path / "idrift"
    (package / "commands").mkdir(parents=True)
    for name in ("__init__.py", "commands/__init__.py", "commands/compare.py"):
        (package / name).write_text("")
    (package / "report.py").write_text("def f():\n    from idrift.commands.compare import rows\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert upward_imports() == ["idrift.report -> idrift.commands.compare"]


def test_planning_a_run_does_not_load_torch():
    code = ("import sys, idrift.runner; "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
