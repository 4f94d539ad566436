"""IdentitySimilarity on real photographs (dlib backend), cosine_similarity properties, backend agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from idrift.errors import NoFaceError, NonFiniteError
from idrift.metrics.identity import (
    IdentitySimilarity,
    backend_agreement,
    cosine_similarity,
    identity_shift,
)


@pytest.fixture(scope="module")
def measured(dlib_backend, builtin_manifest, astronaut):
    """One metric run: the astronaut reference against the same face, another person, and a photo with no face."""
    from skimage import data

    metric = IdentitySimilarity(dlib_backend)
    astro = builtin_manifest.entry("astronaut")
    metric.reference("astronaut", builtin_manifest.image_file(astro))
    records = [
        metric.update("flip", "astronaut", astronaut[:, ::-1]),
        metric.update("other person", "astronaut", builtin_manifest.image_file(builtin_manifest.entry("t1_person0"))),
        metric.update("coffee", "astronaut", data.coffee()),
        metric.update("head crop", "astronaut", astronaut[0:300, 60:400]),
    ]
    return metric, records


def test_records_keep_failed_detections(measured):
    metric, records = measured
    flip, other, coffee, head = records
    assert flip["detected"] and flip["id_sim"] > 0.97 and flip["n_faces"] == 2  # the mission patch is the second
    assert flip["bbox"] == [245.0, 76.0, 336.0, 167.0] and flip["det_score"] > 1.0
    assert other["detected"] and other["id_sim"] < 0.93 and other["n_faces"] == 1
    assert coffee == {
        "sample": "coffee",
        "reference": "astronaut",
        "id_sim": None,
        "detected": False,
        "n_faces": 0,
        "bbox": None,
        "det_score": None,
    }
    assert head["detected"] and head["id_sim"] > 0.97 and head["n_faces"] == 1
    assert metric.records == records  # nothing dropped


def test_compute_zero_and_detected_aggregations(measured):
    metric, records = measured
    sims = [r["id_sim"] for r in records if r["detected"]]
    zero = metric.compute()
    assert zero["aggregation"] == "zero"
    assert zero["n"] == 4 and zero["n_detected"] == 3 and zero["detection_rate"] == 0.75
    assert zero["mean"] == pytest.approx(sum(sims) / 4)  # the failed detection counts as 0
    assert zero["mean_detected"] == pytest.approx(sum(sims) / 3)
    assert zero["sem"] == pytest.approx(np.std(sims + [0.0], ddof=1) / 2)

    detected = IdentitySimilarity(metric.backend, aggregation="detected")
    detected.records = list(records)
    out = detected.compute()
    assert out["mean"] == pytest.approx(sum(sims) / 3) == out["mean_detected"]
    assert out["sem"] == pytest.approx(np.std(sims, ddof=1) / math.sqrt(3))
    assert out["mean"] > zero["mean"]


def test_reference_uses_the_largest_face_and_counts_them(dlib_backend, t1_path, astronaut):
    from skimage import data

    from idrift.faces import largest_face, load_image

    metric = IdentitySimilarity(dlib_backend)
    group = metric.reference("group", t1_path)
    assert group.bbox == largest_face(dlib_backend.detect(load_image(t1_path))).bbox
    assert metric.reference_face_counts["group"] == 6
    with pytest.raises(NoFaceError, match=r"^coffee photo: no face found"):
        metric.reference("coffee", data.coffee(), source="coffee photo")
    astro = metric.reference("astro", astronaut)  # the full photo: face + mission patch
    assert astro.bbox[:2] == (175.0, 76.0) and metric.reference_face_counts["astro"] == 2


def test_usage_errors(dlib_backend, builtin_manifest):
    metric = IdentitySimilarity(dlib_backend)
    with pytest.raises(ValueError, match="before any update"):
        metric.compute()
    with pytest.raises(KeyError, match=r"no reference 'alice' \(known: none\); call reference\(\) first"):
        metric.update("s0", "alice", np.zeros((64, 64, 3), np.uint8))
    metric.reference("p1", builtin_manifest.image_file(builtin_manifest.entry("t1_person1")))
    metric.update("s0", "p1", np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="already measured"):
        metric.update("s0", "p1", np.zeros((64, 64, 3), np.uint8))
    assert metric.compute()["mean"] == 0.0 and metric.compute()["sem"] is None
    with pytest.raises(ValueError, match="aggregation must be one of"):
        IdentitySimilarity(dlib_backend, aggregation="median")
    metric.reset()
    assert metric.records == []


# ------------------------------------------------------------------------------------------------
# cosine_similarity

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 16).flatmap(
        lambda n: st.tuples(arrays(np.float32, n, elements=finite), arrays(np.float32, n, elements=finite))
    )
)
def test_cosine_bounds_symmetry_and_scale_invariance(pair):
    a, b = pair
    if np.linalg.norm(a.astype(np.float64)) == 0 or np.linalg.norm(b.astype(np.float64)) == 0:
        with pytest.raises(ValueError, match="zero vector"):
            cosine_similarity(a, b)
        return
    s = cosine_similarity(a, b)
    assert -1.0 <= s <= 1.0
    assert s == cosine_similarity(b, a)
    assert cosine_similarity(a, a) == pytest.approx(1.0)
    assert cosine_similarity(a, -a) == pytest.approx(-1.0)
    assert cosine_similarity(3.0 * a.astype(np.float64), b) == pytest.approx(s, abs=1e-9)


def test_cosine_errors():
    with pytest.raises(ValueError, match="zero vector"):
        cosine_similarity([0.0, 0.0], [1.0, 0.0])
    with pytest.raises(NonFiniteError, match="first vector has NaN"):
        cosine_similarity([np.nan, 1.0], [1.0, 0.0])
    with pytest.raises(NonFiniteError, match="second vector has NaN or inf"):
        cosine_similarity([1.0, 1.0], [np.inf, 0.0])
    with pytest.raises(ValueError, match=r"shapes \(2,\) and \(3,\)"):
        cosine_similarity([1.0, 0.0], [1.0, 0.0, 0.0])
    assert cosine_similarity([1.0, 0.0], [0.0, 2.0]) == 0.0


# ------------------------------------------------------------------------------------------------
# backend_agreement


def test_backend_agreement_spearman(measured):
    _, records = measured
    a = {r["sample"]: r["id_sim"] for r in records}  # coffee is None: left out
    b = {k: (None if v is None else math.exp(5 * v)) for k, v in a.items()}  # a monotone transform: same ranks
    b["only in b"] = 0.5
    out = backend_agreement(a, b)
    assert out["n"] == 3 and out["n_only_b"] == 1 and out["n_only_a"] == 0
    assert out["rho"] == pytest.approx(1.0)
    reversed_b = {k: -v for k, v in a.items() if v is not None}
    assert backend_agreement(a, reversed_b)["rho"] == pytest.approx(-1.0)
    few = backend_agreement({"x": 0.1, "y": 0.2}, {"x": 0.3, "y": 0.1})
    assert few == {"rho": None, "p": None, "n": 2, "n_only_a": 0, "n_only_b": 0}


def test_identity_shift_on_real_photographs(dlib_backend, builtin_manifest, astronaut):
    """A JPEG round trip of the astronaut stands in for a fast path's slightly different image of the same
    spec; another person's photo for a path that lost the identity; the coffee photo for one with no face."""
    import io

    from PIL import Image
    from skimage import data

    from idrift.faces.image_io import load_image
    from idrift.faces.select import largest_face, reference_face

    def face_of(image):
        return largest_face(dlib_backend.detect(image))

    photo_path = builtin_manifest.image_file(builtin_manifest.entry("astronaut"))
    photo = reference_face(dlib_backend.detect(load_image(photo_path)), source=str(photo_path))
    buffer = io.BytesIO()
    Image.fromarray(astronaut).save(buffer, format="JPEG", quality=50)
    reference, recompressed = face_of(astronaut), face_of(np.asarray(Image.open(buffer).convert("RGB")))
    other = face_of(load_image(builtin_manifest.image_file(builtin_manifest.entry("t1_person0"))))

    near = identity_shift(photo, reference, recompressed)
    assert near["id_sim_between"] > 0.97 and abs(near["id_sim_delta"]) < 0.02
    assert near["id_sim_delta"] == pytest.approx(near["id_sim_candidate"] - near["id_sim_reference"])
    assert "reason" not in near

    lost = identity_shift(photo, reference, other)
    assert lost["id_sim_between"] < 0.93 and lost["id_sim_delta"] < -0.05
    assert lost["id_sim_reference"] == near["id_sim_reference"]  # the same reference face, the same figure

    assert face_of(data.coffee()) is None
    no_candidate = identity_shift(photo, reference, None)
    assert no_candidate["id_sim_delta"] is None and no_candidate["id_sim_between"] is None
    assert no_candidate["id_sim_reference"] == near["id_sim_reference"]
    assert no_candidate["reason"] == "no face in the candidate image"
    neither = identity_shift(photo, None, None)
    assert neither["reason"] == "no face in the reference path's image or the candidate image"
