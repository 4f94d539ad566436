"""docs/performance.md's figures are generated from baselines/h200-synthetic.json (idrift.baselines.perf_doc):
the committed doc matches the committed baseline, and a changed baseline makes `--check` fail."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from idrift.baselines import perf_doc
from idrift.baselines.io import load_baseline
from idrift.errors import BaselineError

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "performance.md"
BASELINE = REPO / "baselines" / "h200-synthetic.json"


def test_committed_doc_matches_the_baseline():
    proc = subprocess.run([sys.executable, "-m", "idrift.baselines.perf_doc", "--check"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_fast_path_figure_is_in_the_doc():
    doc = DOC.read_text()
    fast = load_baseline(BASELINE).claims["fast_paths"].metrics
    kinds = {re.match(r"[a-z_]+", name).group() for name in fast}
    for kind in kinds:
        assert f"`{kind}`" in doc, kind
    lossless = fast["latency_s[schnell-4@lossless]"].aggregate
    row = next(line for line in doc.splitlines() if line.startswith("| schnell-4 |"))  # the first table: seconds
    assert f"{lossless:.3f}" in row
    assert perf_doc.COMMAND in doc


def test_check_fails_on_a_changed_baseline_and_rewrite_fixes_it(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text(DOC.read_text())
    changed = json.loads(BASELINE.read_text())
    changed["claims"]["fast_paths"]["metrics"]["latency_s[schnell-4@lossless]"]["aggregate"] = 9.876
    baseline = tmp_path / "changed.json"
    baseline.write_text(json.dumps(changed))
    args = ["--baseline", str(baseline), "--doc", str(doc)]
    assert perf_doc.main([*args, "--check"]) == 1
    assert perf_doc.main(args) == 0
    assert perf_doc.main([*args, "--check"]) == 0
    text = doc.read_text()
    assert "9.876" in text
    assert text.split(perf_doc.BEGIN)[0] == DOC.read_text().split(perf_doc.BEGIN)[0]  # the prose is kept


def test_doc_without_markers_is_one_clear_error(tmp_path, capsys):
    doc = tmp_path / "performance.md"
    doc.write_text("# no generated section\n")
    assert perf_doc.main(["--doc", str(doc), "--check"]) == 2
    err = capsys.readouterr().err
    assert str(doc) in err and "put them back" in err


def test_baseline_without_fast_paths_is_refused():
    paper = load_baseline(REPO / "baselines" / "paper.json")
    with pytest.raises(BaselineError, match="no `fast_paths` entry"):
        perf_doc.render(paper, "baselines/paper.json")
