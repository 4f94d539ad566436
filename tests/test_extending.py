"""docs/architecture.md's recipe for a new claim, followed literally: in a copy of the package, a throwaway
claim is added by editing exactly the files the doc lists (idrift/claims.py, idrift/baselines/schema.py and a
new benchmarks/test_<family>.py), then `pytest` on its family judges it on the tiny profile (four samples:
one sample has no interval, so its word could only be INCONCLUSIVE) and
`--idrift-update-baselines` writes it into a baseline. If the recipe needs another file, this test fails."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURE = REPO / "docs" / "architecture.md"

CLAIM = '''
CLAIMS = (*CLAIMS, Claim(
    id="throwaway_schnell1", family="throwaway", title="a one-step schnell image has pixels",
    paper="none (a test of the recipe)", protocol="two identities x two prompts",
    arms=(Arm("schnell", 1),), samples=Samples(prompts=("portrait", "beach"), identities={"smoke": 2, "full": 2}),
    summary="backbone_swap",
    expectations=(Expect("pixel_mean[schnell-1]", ">", 0, ("tiny", "synthetic", "real"), why="not black"),),
    metrics=(),
))
'''
FAMILY = '''"""The throwaway claim."""

from idrift.pytest_plugin import check_claim, run_sample

CLAIM_FAMILY = "throwaway"


def test_sample(idrift_session, idrift_sample):
    run_sample(idrift_session, idrift_sample)


def test_claim(idrift_session, idrift_claim, request):
    check_claim(idrift_session, idrift_claim, request)
'''


def recipe_files(section: str) -> list[str]:
    """The files docs/architecture.md lists under `section` (backticked paths in its bullet list)."""
    text = ARCHITECTURE.read_text()
    body = text.split(f"### {section}", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^- `([^`]+)`", body, flags=re.M)


def test_a_new_claim_takes_exactly_the_documented_files(tmp_path):
    assert recipe_files("A claim") == ["idrift/claims.py", "idrift/baselines/schema.py", "benchmarks/test_<family>.py"]
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("idrift", "baselines"):
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    (root / "benchmarks").mkdir()
    shutil.copy(REPO / "conftest.py", root / "conftest.py")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    claims = root / "idrift" / "claims.py"
    text = claims.read_text()
    marker = "\nCLAIMS_BY_ID = "
    claims.write_text(text.replace(marker, CLAIM + marker, 1))
    schema = root / "idrift" / "baselines" / "schema.py"
    ids = "CLAIM_IDS: tuple[str, ...] = (\n"
    assert ids in schema.read_text()
    schema.write_text(schema.read_text().replace(ids, ids + '    "throwaway_schnell1",\n', 1))
    (root / "benchmarks" / "test_throwaway.py").write_text(FAMILY)

    changed = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                     if p.is_file() and before.get(p) != p.read_bytes())
    assert changed == ["benchmarks/test_throwaway.py", "idrift/baselines/schema.py", "idrift/claims.py"]

    baseline = tmp_path / "throwaway.json"
    shutil.copy(REPO / "baselines" / "tiny-cpu.json", baseline)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_throwaway.py", "-q", "-p", "no:cacheprovider",
         "--idrift-store", str(tmp_path / "store"), "--idrift-baseline", str(baseline), "--idrift-update-baselines"],
        cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert re.search(r"throwaway_schnell1: pixel_mean\[schnell-1\] > 0 .*-> PASS", out), out[-4000:]
    written = json.loads(baseline.read_text())["claims"]["throwaway_schnell1"]["metrics"]
    assert written["pixel_mean[schnell-1]"]["aggregate"] > 0
