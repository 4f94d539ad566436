"""Face detection and identity embeddings: two backends behind one interface (`FaceBackend`).

- "arcface": insightface antelopev2 through onnxruntime, the paper's metric (needs the model folder);
- "dlib": dlib's HOG detector and ResNet descriptor, real weights from the package index (offline).

Example:
    >>> from idrift.faces import make_backend
    >>> make_backend("dlib").name
    'dlib'
"""

from __future__ import annotations

from idrift.faces.base import DetectedFace, FaceBackend
from idrift.faces.image_io import as_rgb_uint8, load_image
from idrift.faces.select import ReferenceDetection, find_reference, largest_face, reference_face, single_face

BACKENDS = ("arcface", "dlib")


def make_backend(name: str, **kw) -> FaceBackend:
    """Build a backend by name. "arcface" takes `model_root` (None: $IDRIFT_ANTELOPEV2, else insightface's
    own model root), `det_threshold`,
    `det_size`, `providers`; "dlib" takes `det_threshold`, `upsample`."""
    if name == "arcface":
        from idrift.faces.arcface import ArcFaceBackend

        return ArcFaceBackend(kw.pop("model_root", None), **kw)
    if name == "dlib":
        from idrift.faces.dlib_backend import DlibBackend

        return DlibBackend(**kw)
    raise ValueError(f"unknown face backend {name!r}; choose one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "DetectedFace",
    "FaceBackend",
    "ReferenceDetection",
    "as_rgb_uint8",
    "find_reference",
    "largest_face",
    "load_image",
    "make_backend",
    "reference_face",
    "single_face",
]
