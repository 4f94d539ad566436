"""`idrift identity` and `idrift data build-identities` as a user runs them: a real subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def idrift(*args, env_extra=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "IDRIFT_ANTELOPEV2"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "idrift.cli", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory, astronaut):
    from skimage import data

    folder = tmp_path_factory.mktemp("cli")
    Image.fromarray(astronaut).save(folder / "a.png")
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(folder / "b.png")
    Image.fromarray(data.coffee()).save(folder / "coffee.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG garbage")
    return folder


def test_identity_same_face(images):
    result = idrift("identity", images / "a.png", images / "b.png", "--backend", "dlib")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{images / 'a.png'}: 2 faces, using the largest: box (175, 76, 266, 167) score 1.164"
    assert lines[1].startswith(f"{images / 'b.png'}: 2 faces, using the largest: box (245, 76, 336, 167)")
    similarity = float(re.fullmatch(r"cosine similarity \(dlib, .+\): (\d\.\d{4})", lines[2]).group(1))
    assert similarity > 0.97


def test_identity_json_output(images):
    result = idrift("identity", images / "a.png", images / "a.png", "--backend", "dlib", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"] == "dlib" and report["cosine_similarity"] == pytest.approx(1.0)
    assert [i["n_faces"] for i in report["images"]] == [2, 2]


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ("a.png", "coffee.png", "--backend", "dlib"),
            r".*coffee\.png: no face found \(backend dlib, detector threshold 0\)",
        ),
        (("a.png", "missing.png", "--backend", "dlib"), r"image .*missing\.png: file not found; check the path"),
        (("corrupt.png", "a.png", "--backend", "dlib"), r"image .*corrupt\.png: not a readable image"),
        (("a.png", "b.png"), r"no antelopev2 folder given .*IDRIFT_ANTELOPEV2.*or use --backend dlib"),
    ],
    ids=["no face", "missing file", "corrupt file", "arcface without weights"],
)
def test_identity_errors_are_one_clear_line(images, tmp_path, args, message):
    # No antelopev2 in insightface's own root either (it is searched when no folder is given).
    no_root = {"HOME": str(tmp_path / "home"), "INSIGHTFACE_HOME": str(tmp_path / "insightface")}
    result = idrift("identity", *[images / a if a.endswith(".png") else a for a in args], env_extra=no_root)
    assert result.returncode == 2
    assert re.match(r"^idrift identity: error: " + message, result.stderr), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_data_build_identities(tmp_path, builtin_manifest):
    src = tmp_path / "photos"
    src.mkdir()
    for name in ("astronaut", "t1_person0", "t1_person1"):
        shutil.copy(builtin_manifest.image_file(builtin_manifest.entry(name)), src / f"{name}.png")
    out = tmp_path / "set" / "ids.json"
    result = idrift("data", "build-identities", src, "--out", out, "--backend", "dlib", "--n", "2", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}: 2 identities (2 of 3 files passed the filters" in result.stdout
    assert "note: age filter not applied: backend dlib has no age model" in result.stdout
    manifest = json.loads(out.read_text())
    assert sorted(e["identity_id"] for e in manifest["entries"]) == ["astronaut", "t1_person0"]
    rejected = (tmp_path / "set" / "ids.rejected.jsonl").read_text()
    assert "t1_person1.png" in rejected and "not > 1 (dlib's scale)" in rejected
