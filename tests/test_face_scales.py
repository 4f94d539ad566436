"""Face backends say what their numbers mean (issue 22, item 6): each backend's same-person threshold
with its source and decision in `idrift identity`; each backend's own detector-score scale in the
identity-set builder, so the astronaut photograph is accepted under dlib. Real dlib weights, real photos."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from idrift.data.identity_builder import build_identity_set
from idrift.faces import load_image
from idrift.faces.scales import DLIB_DESCRIPTOR_NORM, DLIB_DISTANCE, SCALES, scale_of

REPO = Path(__file__).resolve().parents[1]


def idrift(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDRIFT_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "idrift.cli", *map(str, args)], env=env, cwd=REPO,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)


def raw_descriptors(backend, image) -> list[np.ndarray]:
    """dlib's raw (unnormalised) descriptors of every face at the backend's threshold, as face_recognition
    computes them."""
    rects, _, _ = backend._detector.run(image, backend.upsample, backend.det_threshold)
    return [np.asarray(backend._recognizer.compute_face_descriptor(image, backend._shape_predictor(image, r)))
            for r in rects]


@pytest.fixture(scope="module")
def builtin_faces(builtin_manifest, dlib_backend):
    """(name, raw descriptor) of the built-in set's seven faces and of the mirrored astronaut."""
    out = []
    for entry in builtin_manifest.entries:
        (descriptor,) = raw_descriptors(dlib_backend, load_image(builtin_manifest.image_file(entry)))
        out.append((entry.identity_id, descriptor))
    astro = load_image(builtin_manifest.image_file(builtin_manifest.entry("astronaut")))
    (mirrored,) = raw_descriptors(dlib_backend, np.ascontiguousarray(astro[:, ::-1]))
    out.append(("astronaut", mirrored))
    return out


def test_dlib_cosine_threshold_is_face_recognitions_distance_rule(builtin_faces):
    norms = np.array([np.linalg.norm(d) for _, d in builtin_faces[:7]])
    assert norms.mean() == pytest.approx(DLIB_DESCRIPTOR_NORM, abs=0.01), norms
    threshold = SCALES["dlib"].same_person
    assert threshold == pytest.approx(1 - DLIB_DISTANCE**2 / (2 * DLIB_DESCRIPTOR_NORM**2), abs=5e-4)
    decisions = []
    for (name_a, a), (name_b, b) in itertools.combinations(builtin_faces, 2):
        by_distance = np.linalg.norm(a - b) <= DLIB_DISTANCE  # face_recognition.compare_faces
        cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        assert (cosine >= threshold) == by_distance, (name_a, name_b, np.linalg.norm(a - b), cosine)
        decisions.append((name_a == name_b, by_distance))
    assert all(same == decided for same, decided in decisions)  # one true pair (the mirror), 27 of different people
    assert sum(same for same, _ in decisions) == 1


def test_every_backend_states_its_scale_and_source():
    assert set(SCALES) == {"arcface", "dlib"}
    assert SCALES["arcface"].same_person == 0.28 and "insightface" in SCALES["arcface"].same_person_source
    assert SCALES["arcface"].confident_face == 0.7 and "paper" in SCALES["arcface"].confident_face_source
    assert SCALES["dlib"].confident_face == 1.0 and "margin" in SCALES["dlib"].confident_face_source
    assert scale_of("dlib").is_same_person(0.95) and not scale_of("dlib").is_same_person(0.90)
    with pytest.raises(ValueError, match="no score scale for face backend 'x'"):
        scale_of("x")


@pytest.fixture(scope="module")
def pair_images(tmp_path_factory, astronaut, builtin_manifest):
    folder = tmp_path_factory.mktemp("pairs")
    Image.fromarray(astronaut).save(folder / "a.png")
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(folder / "mirror.png")
    Image.open(builtin_manifest.image_file(builtin_manifest.entry("t1_person0"))).save(folder / "other.png")
    return folder


def test_identity_prints_the_threshold_and_decision(pair_images):
    same = idrift("identity", pair_images / "a.png", pair_images / "mirror.png", "--backend", "dlib")
    assert same.returncode == 0, same.stderr
    last = same.stdout.splitlines()[-1]
    assert last.startswith("same person: yes (0.99") and ">= 0.919, dlib's threshold: face_recognition's" in last
    other = idrift("identity", pair_images / "a.png", pair_images / "other.png", "--backend", "dlib")
    assert other.returncode == 0, other.stderr
    assert other.stdout.splitlines()[-1].startswith("same person: no (0.8")
    report = json.loads(idrift("identity", pair_images / "a.png", pair_images / "other.png", "--backend", "dlib",
                               "--json").stdout)
    assert report["same_person"] is False and report["same_person_threshold"] == 0.919
    assert "Euclidean distance <= 0.6" in report["same_person_threshold_source"]


def test_builder_accepts_the_astronaut_photograph_under_dlib(tmp_path, astronaut, dlib_backend):
    # The whole skimage photograph: her face scores 1.16, the mission patch 0.12 (inside dlib's margin,
    # not a second person). With SCRFD's 0.7 applied to dlib's 0-threshold detections it was rejected.
    faces = dlib_backend.detect(astronaut)
    assert sorted(round(f.score, 2) for f in faces) == [0.12, 1.16]
    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    manifest = build_identity_set(tmp_path, tmp_path / "set" / "m.json", dlib_backend)
    (entry,) = manifest.entries
    assert entry.identity_id == "astronaut" and entry.face_box == (175.0, 76.0, 266.0, 167.0)
    rule = manifest.created_with["filters"]["min_score"]
    assert rule["value"] == 1.0 and rule["scale"] == "dlib" and "margin" in rule["source"]
    # A score the user gives wins, on the backend's scale: 1.2 is above her face.
    with pytest.raises(Exception, match="no photo .* passed the filters"):
        build_identity_set(tmp_path, tmp_path / "set2" / "m.json", dlib_backend, min_score=1.2)
    assert "detector score 1.164 is not > 1.2 (dlib's scale)" in (tmp_path / "set2" / "m.rejected.jsonl").read_text()
