"""The dlib backend on real photographs: detection, keypoints, embeddings, and identity separation.

Measured on this machine (dlib 20.0.1), cosine similarity of L2-normalised descriptors to the
astronaut reference crop: same face under flip/crops/scaling/colour changes 0.982-0.9998; different
people (t1.jpg's six and the astronaut) 0.81-0.915. For normalised vectors cos = 1 - d^2/2, but dlib's
0.6 distance threshold applies to raw descriptors (norm ~1.45), so those numbers do not map directly.
"""

from __future__ import annotations

import copy
import io
import itertools

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from idrift.errors import ImageError, MultipleFacesError, NoFaceError
from idrift.faces import find_reference, largest_face, load_image, make_backend, reference_face, single_face
from idrift.faces.dlib_backend import keypoints_from_68

SAME_MIN = 0.97  # measured minimum 0.982 (half resolution)
DIFFERENT_MAX = 0.93  # measured maximum 0.915 (t1 people 3 and 4)


def _pil(x):
    return Image.fromarray(np.ascontiguousarray(x))


def _jpeg(x, quality):
    buffer = io.BytesIO()
    _pil(x).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


SAME_FACE_VARIANTS = {
    "horizontal flip": lambda a: a[:, ::-1],
    "head crop": lambda a: a[0:300, 60:400],
    "off-centre tight crop": lambda a: a[40:240, 150:330],
    "scale 0.5x": lambda a: np.asarray(_pil(a).resize((256, 256), Image.Resampling.BILINEAR)),
    "scale 1.5x": lambda a: np.asarray(_pil(a).resize((768, 768), Image.Resampling.BICUBIC)),
    "brightness 1.3": lambda a: np.asarray(ImageEnhance.Brightness(_pil(a)).enhance(1.3)),
    "saturation 0.3": lambda a: np.asarray(ImageEnhance.Color(_pil(a)).enhance(0.3)),
    "channel gains (1.15, 1, 0.85)": lambda a: np.clip(a * np.array([1.15, 1.0, 0.85]), 0, 255).astype(np.uint8),
    "grayscale": lambda a: np.repeat(np.asarray(_pil(a).convert("L"))[:, :, None], 3, axis=2),
    "JPEG quality 30": lambda a: _jpeg(a, 30),
}


@pytest.fixture(scope="module")
def astronaut_reference(dlib_backend, builtin_manifest):
    """The reference embedding: the built-in astronaut crop (exactly one face)."""
    entry = builtin_manifest.entry("astronaut")
    faces = dlib_backend.detect(load_image(builtin_manifest.image_file(entry)))
    return reference_face(faces, source=entry.image_path)


@pytest.fixture(scope="module")
def same_face_scores(dlib_backend, astronaut, astronaut_reference):
    scores = {}
    for name, transform in SAME_FACE_VARIANTS.items():
        face = largest_face(dlib_backend.detect(transform(astronaut)))
        assert face is not None, f"no face found in the astronaut after {name}"
        scores[name] = float(face.embedding @ astronaut_reference.embedding)
    return scores


def test_same_face_scores_clearly_above_different_faces(same_face_scores, astronaut_reference, t1_faces):
    assert len(t1_faces) == 6
    different = {
        f"t1 person {i} vs astronaut": float(f.embedding @ astronaut_reference.embedding)
        for i, f in enumerate(t1_faces)
    }
    for (i, a), (j, b) in itertools.combinations(enumerate(t1_faces), 2):
        different[f"t1 person {i} vs {j}"] = float(a.embedding @ b.embedding)
    print("\nsame face:", {k: round(v, 4) for k, v in same_face_scores.items()})
    print("different:", {k: round(v, 4) for k, v in different.items()})
    assert min(same_face_scores.values()) >= SAME_MIN, same_face_scores
    assert max(different.values()) <= DIFFERENT_MAX, different
    assert min(same_face_scores.values()) - max(different.values()) >= 0.05


def test_embeddings_are_unit_128d_and_deterministic(dlib_backend, astronaut, astronaut_reference):
    emb = astronaut_reference.embedding
    assert emb.shape == (128,) and emb.dtype == np.float32
    assert abs(np.linalg.norm(emb) - 1.0) < 1e-5
    first, second = (largest_face(dlib_backend.detect(astronaut[0:300, 60:400])) for _ in range(2))
    np.testing.assert_array_equal(first.embedding, second.embedding)
    assert first.age is None  # dlib has no age model
    assert dlib_backend.has_age is False


def test_keypoints_are_insightface_order_and_align_with_norm_crop(astronaut_reference):
    from insightface.utils.face_align import arcface_dst, estimate_norm, norm_crop

    face = astronaut_reference
    kps = face.kps
    assert kps.shape == (5, 2) and kps.dtype == np.float32
    left_eye, right_eye, nose, mouth_left, mouth_right = kps
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]  # image left before image right
    assert (
        max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    )  # eyes, nose, mouth top to bottom
    x1, y1, x2, y2 = face.bbox
    assert np.all((kps[:, 0] > x1) & (kps[:, 0] < x2) & (kps[:, 1] > y1) & (kps[:, 1] < y2))
    # The five points fit ArcFace's template by a similarity transform (wrong order or a mirror would not).
    matrix = estimate_norm(kps, 112)
    mapped = kps @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - arcface_dst).max() < 6.0  # pixels on the 112 px template
    assert norm_crop(np.zeros((256, 256, 3), np.uint8), kps, 112).shape == (112, 112, 3)


def test_keypoints_from_68_rule():
    landmarks = np.zeros((68, 2))
    landmarks[36:42] = [10, 20]
    landmarks[42:48] = [30, 20]
    landmarks[30] = [20, 30]
    landmarks[48] = [12, 40]
    landmarks[54] = [28, 40]
    assert keypoints_from_68(landmarks).tolist() == [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]]
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        keypoints_from_68(np.zeros((5, 2)))


def test_full_astronaut_has_a_false_detection_so_selection_matters(dlib_backend, astronaut):
    # HOG also fires (score ~0.12) on the mission patch, with a box almost as large as the face.
    faces = dlib_backend.detect(astronaut)
    assert len(faces) == 2
    face = largest_face(faces)
    assert face.bbox[:2] == (175.0, 76.0) and face.score > 1.0
    assert reference_face(faces, source="astronaut.png") is face  # a reference is used by its largest face
    found = find_reference(dlib_backend, astronaut, source="astronaut.png")
    assert (found.face.bbox, found.n_faces, found.det_size) == (face.bbox, 2, None)  # dlib: one pass, no sizes
    with pytest.raises(MultipleFacesError) as info:  # the identity-set builder's single-face filter
        single_face(faces, source="astronaut.png")
    message = str(info.value)
    assert (
        message.startswith("astronaut.png: found 2 faces")
        and "box (175, 76, 266, 167)" in message
        and "crop" in message
    )


def test_group_photo_is_used_by_its_largest_face_and_fails_the_single_face_filter(dlib_backend, t1_faces, t1_path):
    areas = [(f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]) for f in t1_faces]
    found = find_reference(dlib_backend, load_image(t1_path), source=str(t1_path))
    assert found.n_faces == 6 and found.face.bbox == t1_faces[int(np.argmax(areas))].bbox
    assert sorted(areas)[-1] > sorted(areas)[-2]  # the choice is not a tie
    with pytest.raises(MultipleFacesError, match=r"t1\.jpg: found 6 faces .* crop the image"):
        single_face(t1_faces, source=str(t1_path))


def test_no_face(dlib_backend):
    from skimage import data

    assert dlib_backend.detect(data.coffee()) == []
    assert dlib_backend.detect(np.full((128, 128, 3), 255, np.uint8)) == []
    with pytest.raises(NoFaceError, match=r"^coffee\.png: no face found; a reference image needs one"):
        reference_face([], source="coffee.png")


def test_det_threshold_is_applied(dlib_backend, astronaut, t1_path):
    strict = copy.copy(dlib_backend)  # shares the loaded models; only the threshold differs
    strict.det_threshold = 0.5
    assert [round(f.score, 2) for f in strict.detect(astronaut)] == [1.16]  # the patch (0.12) is gone
    assert len(strict.detect(load_image(t1_path))) == 5  # person 1 scores 0.37
    faces = dlib_backend.detect(astronaut)
    with pytest.raises(NoFaceError, match=r"score >= 2"):
        reference_face(faces, source="a.png", min_score=2.0)
    assert reference_face(faces, source="a.png", min_score=0.5).score > 1.0


def test_bad_image_input_is_refused(dlib_backend):
    with pytest.raises(ImageError, match="uint8"):
        dlib_backend.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ImageError, match="at least 32 px"):
        dlib_backend.detect(np.zeros((10, 10, 3), np.uint8))


def test_provenance_names_models_hashes_and_versions(dlib_backend):
    import dlib

    prov = dlib_backend.provenance()
    assert prov["backend"] == "dlib" and prov["version"] == dlib_backend.version
    assert set(prov["models"]) == {"shape_predictor_68_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat"}
    assert all(len(h) == 16 and int(h, 16) >= 0 for h in prov["models"].values())
    assert prov["packages"]["dlib"] == dlib.__version__
    assert prov["det_threshold"] == 0.0 and prov["upsample"] == 1


def test_make_backend():
    with pytest.raises(ValueError, match="arcface, dlib"):
        make_backend("facenet")
    with pytest.raises(ValueError, match="upsample"):
        make_backend("dlib", upsample=-1)
