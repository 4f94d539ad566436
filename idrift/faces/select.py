"""Which face counts: the face-selection rule, in one place.

- A GENERATED image may show several faces (a crowd in the prompt, a false detection on a badge):
  its identity is measured on the LARGEST face (bounding-box area; equal areas go to the higher
  detector score). InfiniteYou generates one large subject, so the largest face is the subject.
- A REFERENCE image is read as InfiniteYou's own code reads it (`find_reference`): faces detected at
  640 px, else 320, else 160 (backends with `detect_reference`, i.e. antelopev2), then the LARGEST
  face. Several faces are accepted, and their count is recorded (`ReferenceDetection.n_faces`), since
  the official pipeline takes such a photo too; no face at all is an error naming the file.
- The identity-set builder keeps the paper's data filter: a photo enters a set only with EXACTLY ONE
  face (`single_face`); anything else is a rejection that names the file, lists the faces found and
  suggests cropping, and goes to the builder's rejection log.

Example:
    >>> import numpy as np
    >>> from idrift.faces.base import DetectedFace
    >>> small = DetectedFace((0, 0, 10, 10), 0.9, np.zeros((5, 2), np.float32), np.ones(4, np.float32) / 2)
    >>> big = DetectedFace((0, 0, 50, 50), 0.6, np.zeros((5, 2), np.float32), np.ones(4, np.float32) / 2)
    >>> largest_face([small, big]) is big
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from idrift.errors import MultipleFacesError, NoFaceError
from idrift.faces.base import DetectedFace


def largest_face(faces: Sequence[DetectedFace]) -> DetectedFace | None:
    """The face a generated image is measured on: largest box area, ties broken by score; None if no face."""
    if not faces:
        return None
    return max(faces, key=lambda face: (face.area, face.score))


def describe_faces(faces: Sequence[DetectedFace]) -> str:
    """'#0 box (x1, y1, x2, y2) score s; #1 ...' for error messages and CLI output."""
    return "; ".join(f"#{i} {describe_face(face)}" for i, face in enumerate(faces))


def describe_face(face: DetectedFace) -> str:
    x1, y1, x2, y2 = (round(float(v)) for v in face.bbox)
    return f"box ({x1}, {y1}, {x2}, {y2}) score {face.score:.3f}"


def _kept(faces: Sequence[DetectedFace], source: str, min_score: float | None) -> tuple[list[DetectedFace], str]:
    kept = [f for f in faces if min_score is None or f.score >= min_score]
    threshold = "" if min_score is None else f" with score >= {min_score:g}"
    if not kept:
        ignored = f" ({len(faces)} weaker: {describe_faces(faces)})" if faces else ""
        raise NoFaceError(
            f"{source}: no face found{threshold}{ignored}; a reference image needs one clearly visible, frontal face"
        )
    return kept, threshold


def reference_face(faces: Sequence[DetectedFace], *, source: str, min_score: float | None = None) -> DetectedFace:
    """The face a reference image stands for: the largest (InfiniteYou's rule), or `NoFaceError` naming `source`.

    `faces` are the backend's detections (already above its `det_threshold`); `min_score`, when given,
    ignores weaker ones too. Several faces are accepted (`find_reference` records how many).
    """
    kept, _ = _kept(faces, source, min_score)
    return largest_face(kept)


def single_face(faces: Sequence[DetectedFace], *, source: str, min_score: float | None = None) -> DetectedFace:
    """The one face of a photo, or `NoFaceError` / `MultipleFacesError` naming `source`: the identity-set
    builder's data filter (the paper's single-face references)."""
    kept, threshold = _kept(faces, source, min_score)
    if len(kept) > 1:
        raise MultipleFacesError(
            f"{source}: found {len(kept)} faces{threshold} ({describe_faces(kept)}); a reference image needs "
            "exactly one: crop the image to the person whose identity you want"
        )
    return kept[0]


@dataclass(frozen=True)
class ReferenceDetection:
    face: DetectedFace  # the largest face
    n_faces: int  # faces found (at `det_size`)
    det_size: tuple[int, int] | None  # the detector size that found them; None: a backend without sizes (dlib)


def find_reference(backend, image, *, source: str, min_score: float | None = None) -> ReferenceDetection:
    """Detect a reference photo's faces as InfiniteYou does (640, then 320, then 160 px where the backend has
    `detect_reference`; one pass otherwise) and choose the largest. Raises `NoFaceError` naming `source`."""
    if hasattr(backend, "detect_reference"):
        faces, det_size = backend.detect_reference(image)
    else:
        faces, det_size = backend.detect(image), None
    kept, _ = _kept(faces, source, min_score)
    return ReferenceDetection(largest_face(kept), len(kept), det_size)
