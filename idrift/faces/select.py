"""Which face counts: the face-selection rule, in one place.

- A GENERATED image may show several faces (a crowd in the prompt, a false detection on a badge):
  its identity is measured on the LARGEST face (bounding-box area; equal areas go to the higher
  detector score). InfiniteYou generates one large subject, so the largest face is the subject.
- A REFERENCE image defines an identity and must show EXACTLY ONE face above the detector
  threshold; anything else is an error that names the file, lists the faces found and suggests
  cropping. Guessing which of several people is meant would silently measure the wrong identity.

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


def reference_face(faces: Sequence[DetectedFace], *, source: str, min_score: float | None = None) -> DetectedFace:
    """The one face of a reference image, or a clear error.

    `faces` are the backend's detections (already above its `det_threshold`); `min_score`, when given,
    ignores weaker ones too. Raises `NoFaceError` or `MultipleFacesError` naming `source`.
    """
    kept = [f for f in faces if min_score is None or f.score >= min_score]
    threshold = "" if min_score is None else f" with score >= {min_score:g}"
    if not kept:
        ignored = f" ({len(faces)} weaker: {describe_faces(faces)})" if faces else ""
        raise NoFaceError(
            f"{source}: no face found{threshold}{ignored}; a reference image needs one clearly visible, frontal face"
        )
    if len(kept) > 1:
        raise MultipleFacesError(
            f"{source}: found {len(kept)} faces{threshold} ({describe_faces(kept)}); a reference image needs "
            "exactly one: crop the image to the person whose identity you want"
        )
    return kept[0]
