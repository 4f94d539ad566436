"""What the stand-in antelopev2 ONNX files (idrift/faces/standin.py, idrift/faces/synthetic.py) copy from
the real ones: the ONNX version they are written in, SCRFD's output layout (strides and anchors per cell)
and how SCRFD encodes a face box and its five keypoints at an anchor, placed as the ArcFace alignment
template places them. Nothing here is a weight of antelopev2."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The ArcFace alignment template (insightface.utils.face_align.arcface_dst), 112x112 crop pixels.
ARCFACE_DST = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
STRIDES = (8, 16, 32)
NUM_ANCHORS = 2  # SCRFD's anchors per feature-map cell
OPSET = 17
IR_VERSION = 9  # readable by every onnxruntime >= 1.15


def save_model(graph, path: Path) -> None:
    """Write `graph` as a checked ONNX model at OPSET / IR_VERSION."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def face_keypoints(box) -> np.ndarray:
    """Five keypoints placed in `box` (x1, y1, x2, y2) as the ArcFace template places them in its crop."""
    x1, y1, x2, _ = box
    return np.array([x1, y1], np.float32) + ARCFACE_DST * ((x2 - x1) / 112.0)


def anchor_targets(box, centre, stride) -> tuple[np.ndarray, np.ndarray]:
    """SCRFD's raw bbox (l, t, r, b) and kps predictions, in stride units, that decode to `box` and its
    keypoints at the anchor centred on `centre` (insightface multiplies both by the stride)."""
    cx, cy = centre
    x1, y1, x2, y2 = box
    bbox = np.array([cx - x1, cy - y1, x2 - cx, y2 - cy], np.float32) / stride
    kps = ((face_keypoints(box) - np.array([cx, cy], np.float32)) / stride).ravel()
    return bbox, kps
