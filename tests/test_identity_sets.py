"""Identity sets: the manifest format, the paper's filters on a folder of real photos, and the built-in set."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from idrift.data.identities import (
    IdentityEntry,
    ManifestError,
    builtin_identity_set,
    builtin_source_image,
    builtin_spec,
    load_manifest,
    write_manifest,
)
from idrift.data.identity_builder import build_identity_set
from idrift.errors import IdriftError
from idrift.faces import load_image, reference_face


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# ------------------------------------------------------------------------------------------------
# The built-in offline set


def test_builtin_set_lists_seven_people_left_to_right(builtin_manifest):
    ids = [e.identity_id for e in builtin_manifest.entries]
    assert ids == ["astronaut"] + [f"t1_person{i}" for i in range(6)]
    t1_x = [item["face_box"][0] for item in builtin_spec()["identities"][1:]]
    assert t1_x == sorted(t1_x)
    for entry in builtin_manifest.entries:
        assert load_image(builtin_manifest.image_file(entry)).shape == (256, 256, 3)


def test_each_builtin_crop_is_a_valid_reference_of_a_different_person(dlib_backend, builtin_manifest):
    embeddings = []
    for entry in builtin_manifest.entries:
        face = reference_face(
            dlib_backend.detect(load_image(builtin_manifest.image_file(entry))), source=entry.image_path
        )
        assert iou(face.bbox, entry.face_box) > 0.5, (entry.identity_id, face.bbox, entry.face_box)
        embeddings.append(face.embedding)
    sims = np.array(embeddings) @ np.array(embeddings).T
    off_diagonal = sims[~np.eye(len(embeddings), dtype=bool)]
    assert off_diagonal.max() < 0.93  # seven different people (measured max 0.915)


def test_builtin_face_boxes_are_what_dlib_measures(dlib_backend, astronaut, t1_faces):
    # The fixed boxes in builtin.json were measured with the dlib backend; re-measure them.
    spec = builtin_spec()
    measured = {"astronaut": max(dlib_backend.detect(astronaut), key=lambda f: f.score)}
    measured.update({f"t1_person{i}": face for i, face in enumerate(t1_faces)})
    for item in spec["identities"]:
        assert iou(measured[item["identity_id"]].bbox, item["face_box"]) > 0.9, item


def test_builtin_set_is_cached_and_repaired(tmp_path):
    path = builtin_identity_set(tmp_path)
    png = path.parent / "astronaut.png"
    stamp = png.stat().st_mtime_ns
    assert builtin_identity_set(tmp_path) == path and png.stat().st_mtime_ns == stamp  # reused, not rewritten
    original = png.read_bytes()
    png.write_bytes(b"damaged")
    assert builtin_identity_set(tmp_path) == path
    assert png.read_bytes() == original  # a damaged cache is rebuilt


def test_builtin_source_photo_must_match_its_recorded_hash():
    spec = builtin_spec()
    spec["sources"]["t1"]["sha256"] = "0" * 64
    with pytest.raises(IdriftError, match=r"t1\.jpg differs from the one its face boxes were measured on"):
        builtin_source_image("t1", spec)


# ------------------------------------------------------------------------------------------------
# build_identity_set with the paper's filters (dlib: no age model)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, builtin_manifest, astronaut):
    from skimage import data

    src = tmp_path_factory.mktemp("photos")
    # t1_person1 (HOG score 0.46) and t1_person2 (0.97) are inside dlib's SVM margin: not confident faces.
    good = ["astronaut", "t1_person0", "t1_person3", "t1_person5"]
    for name in good + ["t1_person1", "t1_person2"]:
        shutil.copy(builtin_manifest.image_file(builtin_manifest.entry(name)), src / f"{name}.png")
    astro_crop = Image.open(builtin_manifest.image_file(builtin_manifest.entry("astronaut")))
    astro_crop.resize((128, 128), Image.Resampling.LANCZOS).save(src / "small_face.png")
    Image.fromarray(data.coffee()).save(src / "coffee.jpg")
    Image.fromarray(astronaut).save(src / "astronaut_full.png")  # her face 1.16, the mission patch 0.12
    good.append("astronaut_full")
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    (src / "notes.txt").write_text("not a photo")
    (src / "sub").mkdir()
    shutil.copy(src / "astronaut.png", src / "sub" / "astronaut_copy.png")
    return src, good


@pytest.fixture(scope="module")
def built(photo_folder, dlib_backend, tmp_path_factory):
    src, _ = photo_folder
    out = tmp_path_factory.mktemp("out") / "identities.json"
    return build_identity_set(src, out, dlib_backend), out


def test_filters_accept_and_reject_with_reasons(photo_folder, built):
    _, good = photo_folder
    manifest, out = built
    assert sorted(e.identity_id for e in manifest.entries) == sorted(good)
    log = [json.loads(line) for line in (out.parent / "identities.rejected.jsonl").read_text().splitlines()]
    reasons = {r["file"]: r["reason"] for r in log}
    print("\nrejections:", json.dumps(reasons, indent=1))
    assert set(reasons) == {
        "t1_person1.png",
        "t1_person2.png",
        "small_face.png",
        "coffee.jpg",
        "corrupt.png",
        "notes.txt",
        "sub/astronaut_copy.png",
    }
    assert reasons["t1_person1.png"] == "detector score 0.459 is not > 1 (dlib's scale)"
    assert reasons["t1_person2.png"].startswith("detector score 0.97") and "not > 1 (dlib" in reasons["t1_person2.png"]
    assert reasons["small_face.png"].startswith("face width") and "not > 80 px" in reasons["small_face.png"]
    assert "no face found" in reasons["coffee.jpg"]
    assert reasons["corrupt.png"].startswith("unreadable: image corrupt.png")
    assert reasons["notes.txt"].startswith("not an image file")
    assert reasons["sub/astronaut_copy.png"] == "duplicate of astronaut.png (same sha256)"


def test_manifest_records_how_it_was_built(built, photo_folder):
    src, _ = photo_folder
    manifest, _ = built
    filters = manifest.created_with["filters"]
    assert filters["min_age"] == {
        "value": 18,
        "rule": "age >= value",
        "applied": False,
        "why": "backend dlib has no age model",
    }
    assert filters["min_score"]["applied"] and filters["min_face_width"]["applied"]
    assert manifest.created_with["backend"]["backend"] == "dlib"
    assert manifest.created_with["counts"] == {"files": 12, "passed_filters": 5, "chosen": 5, "rejected": 7}
    for entry in manifest.entries:
        assert not Path(entry.image_path).is_absolute()
        assert manifest.image_file(entry) == (src / f"{entry.identity_id}.png").resolve()
        assert entry.age is None and entry.det_score > 1.0 and entry.face_box[2] - entry.face_box[0] > 80


def test_choice_of_n_is_deterministic_and_follows_the_documented_rule(photo_folder, dlib_backend, tmp_path):
    src, good = photo_folder
    only_good = tmp_path / "good"
    only_good.mkdir()
    for name in good:
        shutil.copy(src / f"{name}.png", only_good)

    def ids(n, seed, name):
        return [
            e.identity_id for e in build_identity_set(only_good, tmp_path / name, dlib_backend, n=n, seed=seed).entries
        ]

    first = ids(3, 0, "a.json")
    # The documented rule, computed independently: sort by sha256, numpy default_rng(seed).choice, keep order.
    by_sha = sorted(good, key=lambda name: hashlib.sha256((only_good / f"{name}.png").read_bytes()).hexdigest())
    expected = [by_sha[i] for i in sorted(np.random.default_rng(0).choice(5, size=3, replace=False))]
    assert first == expected
    with pytest.raises(IdriftError, match="asked for 6 identities but only 5 photos"):
        ids(6, 0, "c.json")


def test_empty_or_missing_source_folder(tmp_path, dlib_backend):
    with pytest.raises(IdriftError, match="does not exist"):
        build_identity_set(tmp_path / "nope", tmp_path / "m.json", dlib_backend)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IdriftError, match="no photo in .* passed the filters"):
        build_identity_set(tmp_path / "empty", tmp_path / "m.json", dlib_backend)


# ------------------------------------------------------------------------------------------------
# Manifest format

SHA_A = "a" * 64


def _write_raw(tmp_path: Path, doc) -> Path:
    (tmp_path / "img.png").write_bytes(b"image bytes")
    path = tmp_path / "manifest.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _doc(**entry_changes):
    entry = {
        "identity_id": "alice",
        "image_path": "img.png",
        "sha256": hashlib.sha256(b"image bytes").hexdigest(),
        "face_box": [1, 2, 3, 4],
        "det_score": 0.9,
        "age": 30,
    }
    entry.update(entry_changes)
    return {
        "schema_version": 1,
        "created_with": {"tool": "test"},
        "entries": [{k: v for k, v in entry.items() if v != "DROP"}],
    }


BAD_MANIFESTS = [
    ("not JSON", "{not json", "not valid JSON"),
    ("a list", "[]", "expected a JSON object"),
    ("old schema", {**_doc(), "schema_version": 0}, "schema_version 0 is not supported"),
    ("no entries", {**_doc(), "entries": []}, "non-empty list"),
    ("no created_with", {k: v for k, v in _doc().items() if k != "created_with"}, "'created_with' must be an object"),
    ("missing sha256", _doc(sha256="DROP"), "entry 0: missing sha256"),
    ("bad sha256", _doc(sha256="xyz"), "64 lowercase hex"),
    ("absolute path", _doc(image_path="/etc/img.png"), "relative to the manifest"),
    ("unknown field", _doc(gender="f"), "unknown field(s) gender"),
    ("short face_box", _doc(face_box=[1, 2, 3]), "face_box must be [x1, y1, x2, y2]"),
    ("text det_score", _doc(det_score="high"), "det_score must be a number"),
    ("image missing", _doc(image_path="gone.png"), "image gone.png of 'alice' not found"),
    ("image changed", _doc(sha256=SHA_A), "has changed (sha256"),
    ("duplicate id", {**_doc(), "entries": _doc()["entries"] * 2}, "identity_id 'alice' appears twice"),
]


@pytest.mark.parametrize("case,doc,fragment", BAD_MANIFESTS, ids=[c[0] for c in BAD_MANIFESTS])
def test_bad_manifest_gets_clear_error(tmp_path, case, doc, fragment):
    path = _write_raw(tmp_path, doc)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_manifest_case_count_and_good_manifest(tmp_path):
    print(f"\nmanifest: {len(BAD_MANIFESTS)} bad-manifest cases covered")
    assert len(BAD_MANIFESTS) >= 12
    manifest = load_manifest(_write_raw(tmp_path, _doc()))
    assert manifest.entry("alice").face_box == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(ManifestError, match="not found; build one"):
        load_manifest(tmp_path / "absent.json")
    assert load_manifest(_write_raw(tmp_path, _doc(sha256=SHA_A)), verify=False).entries[0].sha256 == SHA_A


def test_write_manifest_refuses_duplicates(tmp_path):
    entry = IdentityEntry("bob", "b.png", SHA_A)
    with pytest.raises(ManifestError, match="bob appear more than once"):
        write_manifest(tmp_path / "m.json", [entry, entry], created_with={})


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
entry_strategy = st.fixed_dictionaries(
    {
        "content": st.binary(min_size=1, max_size=32),
        "face_box": st.none() | st.tuples(finite, finite, finite, finite),
        "det_score": st.none() | finite,
        "age": st.none() | st.floats(min_value=0, max_value=120),
    }
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.text("abcdefghijklmnopqrstuvwxyz_0123456789-", min_size=1, max_size=12), min_size=1, max_size=6, unique=True
    ),
    st.data(),
)
def test_manifest_round_trip(ids, data):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "imgs").mkdir()
        entries = []
        for i, identity_id in enumerate(ids):
            spec = data.draw(entry_strategy)
            (folder / "imgs" / f"{i}.bin").write_bytes(spec["content"])
            entries.append(
                IdentityEntry(
                    identity_id=identity_id,
                    image_path=f"imgs/{i}.bin",
                    sha256=hashlib.sha256(spec["content"]).hexdigest(),
                    face_box=spec["face_box"],
                    det_score=spec["det_score"],
                    age=spec["age"],
                )
            )
        path = write_manifest(folder / "m.json", entries, created_with={"tool": "hypothesis"})
        loaded = load_manifest(path)
        assert loaded.entries == tuple(entries)
        assert loaded.created_with == {"tool": "hypothesis"}
