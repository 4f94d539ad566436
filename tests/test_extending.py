"""docs/architecture.md's recipe for a new claim, followed literally: in a copy of the package, a throwaway
claim is added by editing exactly the files the doc lists (idrift/claims.py, idrift/baselines/schema.py and a
new benchmarks/test_<family>.py), then `pytest` on its family judges it on the tiny profile (four samples:
one sample has no interval, so its word could only be INCONCLUSIVE) and
`--idrift-update-baselines` writes it into a baseline. If the recipe needs another file, this test fails.
Likewise a throwaway backbone: its registry entry alone gives it options, a layout check, tiny weights that
generate an image and a real loader."""

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


BACKBONE = '''
REGISTRY = (*REGISTRY, Backbone("throwaway", "FLUX.1-throwaway", guidance=1.5, guidance_embeds=True,
                                 scheduler=FLOW_MATCH_DEV, seed_offset=23, hub_id="example/FLUX.1-throwaway"))
'''
USES_BACKBONE = '''
import tempfile

from tiny_runs import pixels, tiny_reference, tiny_spec
from idrift.claims import Arm
from idrift.config import BACKBONE_GUIDANCE, BACKBONES
from idrift.models.layout import save_tiny_as_real_layout
from idrift.models.paths import OPTIONS_BY_FIELD, resolve_weight_paths
from idrift.models.real import load_real_bundle
from idrift.models.tiny import build_tiny_bundle
from idrift.models.weights_check import COMPONENTS, check_weights
from idrift.pipeline.infinite_you import InfiniteYouPipeline

assert BACKBONES == ("dev", "schnell", "throwaway") and BACKBONE_GUIDANCE["throwaway"] == 1.5
opt = OPTIONS_BY_FIELD["flux_throwaway"]
assert (opt.option, opt.cli_option, opt.env, opt.default) == (
    "--idrift-flux-throwaway", "--flux-throwaway", "IDRIFT_FLUX_THROWAWAY", "example/FLUX.1-throwaway")
assert resolve_weight_paths(env={"IDRIFT_FLUX_THROWAWAY": "/x"}).flux_throwaway == "/x"
assert "flux_throwaway" in COMPONENTS
bundle = build_tiny_bundle()
assert bundle.backbone("throwaway").config.guidance_embeds and "flux_throwaway" in bundle.fingerprints
arm = Arm("throwaway", 2)
spec = tiny_spec(backbone=arm.backbone, steps=arm.steps, guidance=arm.guidance_scale)
assert pixels(InfiniteYouPipeline(bundle)(spec, tiny_reference())).std() > 5
layout = save_tiny_as_real_layout(tempfile.mkdtemp())
assert all(s.found for s in check_weights(layout, ["flux_throwaway"], shared_from="throwaway")), layout
real = load_real_bundle(layout, device="cpu", backbones=("throwaway",))
assert list(real.backbone_factories) == ["throwaway"] and real.backbone("throwaway").config.guidance_embeds
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


def test_a_new_backbone_takes_exactly_the_documented_files(tmp_path):
    assert recipe_files("A backbone") == ["idrift/models/backbones.py", "idrift/claims.py"]
    root = tmp_path / "repo"
    shutil.copytree(REPO / "idrift", root / "idrift", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    registry = root / "idrift" / "models" / "backbones.py"
    marker = "\nBY_NAME: dict"
    assert marker in registry.read_text()
    registry.write_text(registry.read_text().replace(marker, BACKBONE + marker, 1))
    # The claims that use it need no more than an Arm of it (USES_BACKBONE makes one).
    env = {"PYTHONPATH": f"{root}:{REPO / 'tests'}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", USES_BACKBONE], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
