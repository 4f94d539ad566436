"""The face-backend interface shared by the ArcFace (antelopev2) and dlib backends.

A backend finds faces in an RGB uint8 image and embeds each one. Keypoints are always the five points
insightface uses (left eye, right eye, nose tip, left mouth corner, right mouth corner, in image
pixels), so alignment (`norm_crop`) and the InfuseNet control image are backend independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class DetectedFace:
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    score: float  # detector confidence
    kps: np.ndarray  # (5, 2) float32, insightface order
    embedding: np.ndarray  # (D,) float32, L2-normalised
    age: float | None = None  # estimated age: backends with an age model fill it when asked (with_age=True)

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def area(self) -> float:
        return max(0.0, self.bbox[2] - self.bbox[0]) * max(0.0, self.bbox[3] - self.bbox[1])


class FaceBackend(Protocol):
    name: str  # "arcface" or "dlib"
    version: str  # bumps when the backend's numbers can change; stored with every measurement
    det_threshold: float

    def detect(self, image: np.ndarray, *, with_age: bool = False) -> list[DetectedFace]:
        """All faces above `det_threshold` in an RGB uint8 (H, W, 3) image, with embeddings.

        `with_age=True` also estimates each face's age where the backend has an age model (the identity-set
        builder's adult filter); the identity metric leaves it off, since it would only add cost per image."""
        ...

    def provenance(self) -> dict:
        """Model files, their fingerprints, the onnxruntime provider used, package versions."""
        ...
