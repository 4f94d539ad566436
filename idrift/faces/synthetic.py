"""Test stand-ins of antelopev2's ONNX files, built in code: no real antelopev2 weights exist offline.

`build_synthetic_antelopev2(folder)` writes a folder with the real files' names (`scrfd_10g_bnkps.onnx`,
`glintr100.onnx`, `genderage.onnx`) and the real input/output names, counts and ranks, so insightface
routes and runs them exactly as it runs the real ones (`ArcFaceBackend(folder)` works unchanged), for
TESTS of the insightface path (tests/conftest.py's synthetic_antelopev2). Their WEIGHTS ARE NOT
antelopev2's: an identity similarity, a detection or an age computed with them means nothing.

They are tiny graphs with exactly known behaviour (see `SYNTH_*`, `synthetic_projection`): the detector
has a static 160x160 input and always reports one face at `SYNTH_FACE_BOX_DET` (score 0.9) plus a
weak one (score 0.3); the recogniser is 14x14 average pooling of the aligned 112x112 crop followed
by `synthetic_projection()`; gender/age is always [0.2, 0.8, 0.34] (male, 34). Costs nothing, so it
says nothing about time: the timing stand-ins, real architectures with random weights, are
idrift/faces/standin.py's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idrift.faces.antelopev2_layout import NUM_ANCHORS, STRIDES, anchor_targets, save_model

SYNTH_DET_SIZE = 160
SYNTH_FACE_BOX_DET = (40.0, 24.0, 120.0, 104.0)  # in the detector's 160x160 input
SYNTH_AGE = 34.0


def synthetic_projection() -> np.ndarray:
    """The synthetic recogniser's fixed projection of the pooled 3x8x8 crop (192 values) to 512-d."""
    return np.random.default_rng(0).standard_normal((192, 512)).astype(np.float32)


def _scrfd_outputs(size: int = SYNTH_DET_SIZE) -> list[tuple[str, np.ndarray]]:
    scores, boxes, kpss = [], [], []
    for stride in STRIDES:
        n = (size // stride) ** 2 * NUM_ANCHORS
        scores.append(np.zeros((n, 1), np.float32))
        boxes.append(np.ones((n, 4), np.float32))
        kpss.append(np.zeros((n, 10), np.float32))

    def place(level, stride, cell_x, cell_y, score, box):
        # Anchors are row-major cells, two anchors per cell, centred at (cell_x, cell_y) * stride.
        index = (cell_y * (size // stride) + cell_x) * NUM_ANCHORS
        scores[level][index, 0] = score
        boxes[level][index], kpss[level][index] = anchor_targets(box, (cell_x * stride, cell_y * stride), stride)

    place(1, 16, 5, 4, 0.9, SYNTH_FACE_BOX_DET)  # centre (80, 64)
    place(0, 8, 3, 16, 0.3, (16.0, 120.0, 40.0, 144.0))  # weak detection, centre (24, 128)
    named = []
    for kind, arrays in (("score", scores), ("bbox", boxes), ("kps", kpss)):
        for stride, array in zip(STRIDES, arrays):
            named.append((f"{kind}_{stride}", array))
    return named


def _size_dependent_detector(face_at: int, path: Path) -> None:
    """A detector with a dynamic input that reports the synthetic faces only for a `face_at` x `face_at`
    input and nothing at any other size (all-zero scores of the size's anchor counts): a reference that
    SCRFD finds only at one detection size, for the 640 -> 320 -> 160 fallback."""
    from onnx import TensorProto, helper, numpy_helper

    c = numpy_helper.from_array
    nodes = [
        helper.make_node("Shape", ["input.1"], ["in_shape"], name="shape"),
        helper.make_node("Gather", ["in_shape", "idx_w"], ["in_w"], axis=0, name="width"),
        helper.make_node("Gather", ["in_shape", "idx_h"], ["in_h"], axis=0, name="height"),
        helper.make_node("Equal", ["in_w", "face_w"], ["is_w"], name="eq_w"),
        helper.make_node("Equal", ["in_h", "face_w"], ["is_h"], name="eq_h"),
        helper.make_node("And", ["is_w", "is_h"], ["found"], name="and"),
    ]
    inits = [
        c(np.array(3, np.int64), "idx_w"), c(np.array(2, np.int64), "idx_h"), c(np.array(face_at, np.int64), "face_w")
    ]
    def out_info(name, array):
        return helper.make_tensor_value_info(
            name, TensorProto.FLOAT, ["anchors_" + name.split("_")[1], array.shape[1]]
        )

    outputs = [out_info(n, a) for n, a in _scrfd_outputs(face_at)]
    then_nodes = [
        helper.make_node("Constant", [], [n], value=c(a, n + "_v"), name="c_" + n) for n, a in _scrfd_outputs(face_at)
    ]
    else_nodes = []
    for name, array in _scrfd_outputs(face_at):
        kind, stride = name.split("_")
        stride_c, width_c = f"stride_{name}", f"cols_{name}"
        inits += [c(np.array(int(stride), np.int64), stride_c), c(np.array([array.shape[1]], np.int64), width_c)]
        else_nodes += [
            helper.make_node("Div", ["in_h", stride_c], [f"rows_{name}"], name=f"rh_{name}"),
            helper.make_node("Div", ["in_w", stride_c], [f"colsw_{name}"], name=f"rw_{name}"),
            helper.make_node("Mul", [f"rows_{name}", f"colsw_{name}"], [f"cells_{name}"], name=f"cells_{name}_n"),
            helper.make_node("Mul", [f"cells_{name}", "anchors"], [f"n_{name}"], name=f"n_{name}_n"),
            helper.make_node("Unsqueeze", [f"n_{name}", "axis0"], [f"n1_{name}"], name=f"u_{name}"),
            helper.make_node("Concat", [f"n1_{name}", width_c], [f"shape_{name}"], axis=0, name=f"s_{name}"),
            helper.make_node("ConstantOfShape", [f"shape_{name}"], [name],
                             value=c(np.array([1.0 if kind == "bbox" else 0.0], np.float32), f"v_{name}"),
                             name=f"z_{name}"),
        ]
    inits += [c(np.array(NUM_ANCHORS, np.int64), "anchors"), c(np.array([0], np.int64), "axis0")]
    then_graph = helper.make_graph(then_nodes, "face", [], [out_info(n, a) for n, a in _scrfd_outputs(face_at)])
    else_graph = helper.make_graph(else_nodes, "no_face", [], [out_info(n, a) for n, a in _scrfd_outputs(face_at)])
    nodes.append(helper.make_node("If", ["found"], [n for n, _ in _scrfd_outputs(face_at)], then_branch=then_graph,
                                  else_branch=else_graph, name="if_found"))
    det_in = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])
    save_model(helper.make_graph(nodes, "scrfd", [det_in], outputs, initializer=inits), path)


def build_synthetic_antelopev2(folder: str | Path, face_at_det_size: int | None = None) -> Path:
    """Write the known-behaviour TEST stand-ins (module docstring) into `folder`; returns it.
    `face_at_det_size`: a detector with a dynamic input that finds the faces only at that detection size
    (`_size_dependent_detector`) instead of the static 160x160 one."""
    from onnx import TensorProto, helper, numpy_helper

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

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
    save_model(helper.make_graph(nodes, "scrfd", [det_in], outputs, initializer=inits), folder / "scrfd_10g_bnkps.onnx")
    if face_at_det_size is not None:
        _size_dependent_detector(int(face_at_det_size), folder / "scrfd_10g_bnkps.onnx")

    # Recogniser: node names avoid 'Sub'/'Mul' prefixes, so insightface normalises with mean/std 127.5.
    rec_nodes = [
        helper.make_node("AveragePool", ["data"], ["pooled"], kernel_shape=[14, 14], strides=[14, 14], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1, name="flatten"),
        helper.make_node("MatMul", ["flat", "proj_w"], ["fc1"], name="proj"),
    ]
    rec_in = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])
    rec_out = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 512])
    save_model(
        helper.make_graph(
            rec_nodes, "arcface", [rec_in], [rec_out],
            initializer=[numpy_helper.from_array(synthetic_projection(), "proj_w")],
        ),
        folder / "glintr100.onnx",
    )

    # Gender/age: constant [female, male, age/100].
    ga_nodes, zero_c = zero_of_input("data")
    ga_nodes.append(helper.make_node("Add", ["ga_c", "zero"], ["fc1"], name="add_out"))
    ga_in = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 96, 96])
    ga_out = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 3])
    ga_c = numpy_helper.from_array(np.array([[0.2, 0.8, SYNTH_AGE / 100]], np.float32), "ga_c")
    save_model(
        helper.make_graph(ga_nodes, "genderage", [ga_in], [ga_out], initializer=[zero_c, ga_c]),
        folder / "genderage.onnx",
    )
    return folder
