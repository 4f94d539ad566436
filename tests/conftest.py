"""Shared test fixtures. Face layer: real photographs from installed packages, the dlib backend
loaded once per session, and a synthetic antelopev2 folder (see `build_synthetic_antelopev2`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def dlib_backend():
    from idrift.faces.dlib_backend import DlibBackend

    return DlibBackend()  # model load ~0.7 s: once per session


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())  # 512x512 RGB; one face, plus a HOG hit on the mission patch


@pytest.fixture(scope="session")
def t1_path() -> Path:
    import insightface

    return Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"  # six different people


@pytest.fixture(scope="session")
def t1_faces(dlib_backend, t1_path):
    """dlib detections on t1.jpg, left to right (~1 s, so once per session)."""
    from idrift.faces.image_io import load_image

    return sorted(dlib_backend.detect(load_image(t1_path)), key=lambda f: f.bbox[0])


@pytest.fixture(scope="session")
def builtin_manifest(tmp_path_factory):
    from idrift.data.identities import builtin_identity_set, load_manifest

    return load_manifest(builtin_identity_set(tmp_path_factory.mktemp("identities")))


@pytest.fixture(scope="session")
def synthetic_antelopev2(tmp_path_factory) -> SyntheticAntelopev2:
    """A folder of stand-in antelopev2 ONNX files with known behaviour (below)."""
    return SyntheticAntelopev2(build_synthetic_antelopev2(tmp_path_factory.mktemp("antelopev2")))


# --------------------------------------------------------------------------------------------------
# A synthetic antelopev2 folder. No real antelopev2 weights exist offline, so these ONNX files have the
# real files' names, input/output names and shapes (so insightface routes and runs them exactly as the
# real ones) but fixed, known behaviour:
#   detector: always reports one face at FACE_BOX (score 0.9) and a weak one (score 0.3), for a
#             160x160 input (the detector's static size), i.e. coordinates x2 for a 320x320 image;
#   recogniser: 8x8 average pooling of the aligned 112x112 crop, then a fixed random projection to 512-d;
#   genderage: always [0.2, 0.8, 0.34] -> male, age 34.

SYNTH_DET_SIZE = 160
SYNTH_FACE_BOX_DET = (40.0, 24.0, 120.0, 104.0)  # in the detector's 160x160 input
SYNTH_AGE = 34.0
ARCFACE_DST = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class SyntheticAntelopev2:
    # Tests get these through the fixture (importing from conftest.py is fragile under pytest).
    folder: Path
    det_size: int = SYNTH_DET_SIZE
    face_box_det: tuple = SYNTH_FACE_BOX_DET
    age: float = SYNTH_AGE

    @staticmethod
    def projection() -> np.ndarray:
        return synthetic_projection()


def synthetic_projection() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((192, 512)).astype(np.float32)


def _scrfd_outputs() -> list[tuple[str, np.ndarray]]:
    scores, boxes, kpss = [], [], []
    for stride in (8, 16, 32):
        n = (SYNTH_DET_SIZE // stride) ** 2 * 2
        scores.append(np.zeros((n, 1), np.float32))
        boxes.append(np.ones((n, 4), np.float32))
        kpss.append(np.zeros((n, 10), np.float32))

    def place(level, stride, cell_x, cell_y, score, box):
        # Anchors are row-major cells, two anchors per cell, centred at (cell_x, cell_y) * stride.
        index = (cell_y * (SYNTH_DET_SIZE // stride) + cell_x) * 2
        cx, cy = cell_x * stride, cell_y * stride
        x1, y1, x2, y2 = box
        scores[level][index, 0] = score
        boxes[level][index] = np.array([cx - x1, cy - y1, x2 - cx, y2 - cy], np.float32) / stride
        kps = np.array([x1, y1], np.float32) + ARCFACE_DST * ((x2 - x1) / 112.0)
        kpss[level][index] = ((kps - np.array([cx, cy], np.float32)) / stride).ravel()

    place(1, 16, 5, 4, 0.9, SYNTH_FACE_BOX_DET)  # centre (80, 64)
    place(0, 8, 3, 16, 0.3, (16.0, 120.0, 40.0, 144.0))  # weak detection, centre (24, 128)
    named = []
    for kind, arrays in (("score", scores), ("bbox", boxes), ("kps", kpss)):
        for stride, array in zip((8, 16, 32), arrays):
            named.append((f"{kind}_{stride}", array))
    return named


def build_synthetic_antelopev2(folder: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def save(graph, name):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 9
        onnx.checker.check_model(model)
        onnx.save(model, str(folder / name))

    def zero_of_input(input_name):
        # A scalar 0 that depends on the input, so outputs are computed from the graph input.
        return [
            helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=0, name="reduce"),
            helper.make_node("Mul", ["mean", "zero_c"], ["zero"], name="zeroing"),
        ], numpy_helper.from_array(np.array(0.0, np.float32), "zero_c")

    # Detector (SCRFD layout with keypoints: 9 outputs).
    nodes, zero_c = zero_of_input("input.1")
    inits, outputs = [zero_c], []
    for name, array in _scrfd_outputs():
        inits.append(numpy_helper.from_array(array, name + "_c"))
        nodes.append(helper.make_node("Add", [name + "_c", "zero"], [name], name="add_" + name))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(array.shape)))
    det_in = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, SYNTH_DET_SIZE, SYNTH_DET_SIZE])
    save(helper.make_graph(nodes, "scrfd", [det_in], outputs, initializer=inits), "scrfd_10g_bnkps.onnx")

    # Recogniser: node names avoid 'Sub'/'Mul' prefixes, so insightface normalises with mean/std 127.5.
    rec_nodes = [
        helper.make_node("AveragePool", ["data"], ["pooled"], kernel_shape=[14, 14], strides=[14, 14], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1, name="flatten"),
        helper.make_node("MatMul", ["flat", "proj_w"], ["fc1"], name="proj"),
    ]
    rec_in = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])
    rec_out = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 512])
    save(
        helper.make_graph(
            rec_nodes,
            "arcface",
            [rec_in],
            [rec_out],
            initializer=[numpy_helper.from_array(synthetic_projection(), "proj_w")],
        ),
        "glintr100.onnx",
    )

    # Gender/age: constant [female, male, age/100].
    ga_nodes, zero_c = zero_of_input("data")
    ga_nodes.append(helper.make_node("Add", ["ga_c", "zero"], ["fc1"], name="add_out"))
    ga_in = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 96, 96])
    ga_out = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 3])
    ga_c = numpy_helper.from_array(np.array([[0.2, 0.8, SYNTH_AGE / 100]], np.float32), "ga_c")
    save(helper.make_graph(ga_nodes, "genderage", [ga_in], [ga_out], initializer=[zero_c, ga_c]), "genderage.onnx")
    return folder
