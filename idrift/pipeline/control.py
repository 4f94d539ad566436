"""InfuseNet's control image: the reference face's five keypoints drawn on black, or all black.

InfiniteYou draws the keypoints InstantID-style: a limb from each eye and mouth corner to the nose
tip, dimmed to 60 %, then a filled circle on each point, on a black canvas of the output size. With
no control image it uses an all-black canvas (its default, and idrift's).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

KEYPOINT_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255))
LIMBS = ((0, 2), (1, 2), (3, 2), (4, 2))  # to the nose tip (index 2)
LIMB_HALF_WIDTH = 4
POINT_RADIUS = 10


def fit_keypoints(kps: np.ndarray, source_size: tuple[int, int], target_size: tuple[int, int]) -> np.ndarray:
    """Map keypoints from the reference image onto the output canvas.

    InfiniteYou resizes the control photo to fit the output's shorter side and centres it on the
    canvas; this applies the same transform to the points. Sizes are (width, height).
    """
    (sw, sh), (tw, th) = source_size, target_size
    if tw <= th:
        new_w, new_h = tw, int(tw * sh / sw)
    else:
        new_w, new_h = int(th * sw / sh), th
    scale = np.array([new_w / sw, new_h / sh], dtype=np.float32)
    offset = np.array([(tw - new_w) // 2, (th - new_h) // 2], dtype=np.float32)
    return np.asarray(kps, dtype=np.float32) * scale + offset


def draw_keypoints(kps: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """Five keypoints (insightface order, canvas pixels) drawn on a black (width, height) canvas."""
    width, height = size
    kps = np.asarray(kps, dtype=np.float64)
    if kps.shape != (5, 2):
        raise ValueError(f"expected 5 keypoints as a (5, 2) array, got shape {kps.shape}")
    canvas = np.zeros((height, width, 3), dtype=np.float64)
    for a, b in LIMBS:
        (xa, ya), (xb, yb) = kps[a], kps[b]
        length = math.hypot(xa - xb, ya - yb)
        angle = math.degrees(math.atan2(ya - yb, xa - xb))
        centre = (int((xa + xb) / 2), int((ya + yb) / 2))
        polygon = cv2.ellipse2Poly(centre, (int(length / 2), LIMB_HALF_WIDTH), int(angle), 0, 360, 1)
        canvas = cv2.fillConvexPoly(canvas, polygon, KEYPOINT_COLOURS[a])
    canvas = (canvas * 0.6).astype(np.uint8)
    for colour, (x, y) in zip(KEYPOINT_COLOURS, kps):
        canvas = cv2.circle(canvas, (int(x), int(y)), POINT_RADIUS, colour, -1)
    return Image.fromarray(canvas)


def black_canvas(size: tuple[int, int]) -> Image.Image:
    width, height = size
    return Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8))
