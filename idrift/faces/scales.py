"""What each face backend's numbers mean: the similarity at which two faces are one person, and the
detector score that counts as a confident face. Scores of one backend mean nothing on another's scale.

arcface (insightface antelopev2: SCRFD detector, glintr100 ArcFace recogniser)
  same person: cosine >= 0.28. insightface's own verification demo
    (deepinsight/insightface, web-demos/src_recognition/main.py) says "They ARE the same person" at
    sim >= 0.28, "LIKELY" at 0.20-0.28 and "NOT" below 0.20. It was written for buffalo_l's w600k_r50
    ArcFace model; insightface publishes no separate number for antelopev2's glintr100, whose cosine is
    on the same ArcFace (additive angular margin) scale.
  confident face: detector score > 0.7, the paper's filter ("ArcFace confidence > 0.7"; SCRFD's score is
    a probability, its detection threshold in insightface is 0.5).

dlib (HOG detector, dlib_face_recognition_resnet_model_v1)
  same person: face_recognition's compare_faces(tolerance=0.6): Euclidean distance <= 0.6 between raw
    128-d descriptors ("0.6 is typical best performance"; dlib's model was trained so). idrift
    L2-normalises descriptors, so it states that rule as a cosine: for descriptors of norm r,
    d^2 = 2 r^2 (1 - cos), so d <= 0.6 <=> cos >= 1 - 0.6^2 / (2 r^2). r is 1.49, the mean raw norm of the
    seven faces of the built-in identity set (1.36-1.57); that gives cos >= 0.919.
    tests/test_face_scales.py re-measures r and checks that the cosine rule and the raw-distance rule
    agree on every pair of those faces.
  confident face: HOG score > 1.0. The score is a linear SVM's margin, not a probability: 0 is dlib's
    decision boundary, and its structural SVM trainer (loss 1 per missed face and per false alarm) asks
    faces to score >= +1 and other windows <= -1, so a score in (0, 1) is inside the margin: a detection
    the detector is not confident of (the astronaut photograph's mission patch scores 0.12, her face 1.16).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackendScale:
    backend: str
    same_person: float  # cosine similarity at or above which two faces are taken as one person
    same_person_source: str
    confident_face: float  # detector score above which a face is confident (the builder's --min-score)
    confident_face_source: str

    def is_same_person(self, cosine: float) -> bool:
        return float(cosine) >= self.same_person


DLIB_DISTANCE = 0.6  # face_recognition.compare_faces' default tolerance (Euclidean, raw descriptors)
DLIB_DESCRIPTOR_NORM = 1.49  # mean raw descriptor norm of the built-in set's seven faces (see above)
DLIB_SAME_PERSON = 1.0 - DLIB_DISTANCE**2 / (2.0 * DLIB_DESCRIPTOR_NORM**2)

SCALES = {
    "arcface": BackendScale(
        backend="arcface",
        same_person=0.28,
        same_person_source="insightface's verification demo (web-demos/src_recognition/main.py): sim >= 0.28",
        confident_face=0.7,
        confident_face_source="the paper's filter, ArcFace (SCRFD) confidence > 0.7",
    ),
    "dlib": BackendScale(
        backend="dlib",
        same_person=round(DLIB_SAME_PERSON, 3),
        same_person_source=(f"face_recognition's Euclidean distance <= {DLIB_DISTANCE} on raw descriptors, as a "
                            f"cosine for descriptors of norm {DLIB_DESCRIPTOR_NORM}"),
        confident_face=1.0,
        confident_face_source="dlib's HOG SVM margin: faces are trained to score >= 1 (0 is the boundary)",
    ),
}


def scale_of(backend) -> BackendScale:
    """The scale of a backend object (by its `name`) or of a backend name."""
    name = backend if isinstance(backend, str) else backend.name
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"no score scale for face backend {name!r}; known: {', '.join(SCALES)}") from None
