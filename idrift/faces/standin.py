"""Timing stand-ins of antelopev2's ONNX files, built in code: no real antelopev2 weights exist offline.

`build_standin_antelopev2` writes a folder with the real files' names (`scrfd_10g_bnkps.onnx`,
`glintr100.onnx`, `genderage.onnx`) and the real input/output names, counts and ranks, so insightface
routes and runs them exactly as it runs the real ones (`ArcFaceBackend(folder)` works unchanged). Their
WEIGHTS ARE NOT antelopev2's: an identity similarity, a detection or an age computed with them means
nothing. The TEST stand-ins, tiny graphs with exactly known behaviour, are idrift/faces/synthetic.py's.

`build_standin_antelopev2(folder)` -- for TIMING ONLY.
    The real networks' architectures and therefore their cost, with seeded random weights:
    - detector: SCRFD-10G-bnkps as published (ResNetV1e backbone with a deep stem, stage blocks
      (3, 4, 2, 3), planes (56, 88, 88, 224); PAFPN to 56 channels; one head per stride with three
      3x3 convolutions of 80 channels and BN+ReLU), with a dynamic input size like the real file
      (batch-norms folded into the convolutions, as onnxruntime does with the real one at load time);
    - recogniser: IResNet-100 (the glint360k "glintr100" ArcFace network: stages (3, 13, 30, 3),
      planes (64, 128, 256, 512), BN-conv-BN-PReLU-conv-BN blocks, 25088x512 fully connected), 112x112;
    - gender/age: a small MobileNet-style network on 96x96 (the real one is a ~1 MB model; its cost
      is negligible beside the two others).
    The detector's outputs are then pinned, so that detection is deterministic whatever the image:
    every score is 0 except one anchor that reports one face at `STANDIN_FACE_BOX_DET` (detector
    input pixels) with score 0.9 and five ArcFace-template keypoints. The whole network still runs
    (the pinned outputs are computed from its head outputs), so the measured time is the real
    detector's, and alignment + embedding + gender/age run once per image, as for a generated
    portrait with one face. Files: ~17 MB, ~261 MB, <1 MB (the sizes of the real ones, roughly);
    building takes a few seconds.

Example (timing stand-ins):
    >>> folder = build_standin_antelopev2(tmp_path / "antelopev2")  # doctest: +SKIP
    >>> backend = ArcFaceBackend(folder, det_size=(640, 640))         # doctest: +SKIP
    >>> [face] = backend.detect(image)                                 # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idrift.faces.antelopev2_layout import NUM_ANCHORS, STRIDES, anchor_targets, save_model

# Where the pinned face is, in detector-input pixels. With det_size 640 an 864x1152 portrait is resized
# to 480x640 in the top-left corner of the input: this box (180x240) then lies on the face's usual place.
STANDIN_FACE_BOX_DET = (150.0, 100.0, 330.0, 340.0)
STANDIN_FACE_SCORE = 0.9
# The pinned anchor: stride 32, feature-map row 0, column 7, first anchor. In row 0 an anchor's index
# ((row * width + column) * anchors) does not depend on the input width, so the face stays put for any
# det_size at least 8 * 32 = 256 pixels wide. Its centre is (224, 0); distances may point anywhere.
_PIN_STRIDE = 32
_PIN_COLUMN = 7
_PIN_INDEX = _PIN_COLUMN * NUM_ANCHORS
_PIN_CENTRE = (_PIN_COLUMN * _PIN_STRIDE, 0.0)


class _Net:
    """Appends ONNX nodes and seeded random initialisers; each method returns its output's name."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []
        self._count = 0

    def _name(self, kind: str) -> str:
        # Lower-case names: insightface's ArcFace/Attribute loaders look for nodes named 'Sub...'/'Mul...'
        # among the first eight to decide an MXNet-style preprocessing; these never match.
        self._count += 1
        return f"{kind}_{self._count}"

    def const(self, array, kind: str = "w") -> str:
        from onnx import numpy_helper

        name = self._name(kind)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], kind: str | None = None, **attrs) -> str:
        from onnx import helper

        out = self._name(kind or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out + "_node", **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 3, stride: int = 1, group: int = 1, gain: float = 1.0) -> str:
        """k x k convolution with bias ('same' padding), He-initialised; `gain` scales the weights
        (residual branches use a small one, so random activations stay finite through 100 layers)."""
        fan_in = cin // group * k * k
        scale = np.float32(gain * np.sqrt(2.0 / fan_in))
        w = self.rng.standard_normal((cout, cin // group, k, k), dtype=np.float32) * scale
        b = np.zeros(cout, np.float32)
        pad = k // 2
        return self.op(
            "Conv", [x, self.const(w), self.const(b, "b")], "conv",
            kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=group,
        )

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def prelu(self, x: str, channels: int) -> str:
        return self.op("PRelu", [x, self.const(np.full((channels, 1, 1), 0.25, np.float32), "slope")])

    def batchnorm(self, x: str, channels: int) -> str:
        """An identity BatchNormalization: kept where the real network has one that cannot be folded."""
        one, zero = np.ones(channels, np.float32), np.zeros(channels, np.float32)
        return self.op(
            "BatchNormalization",
            [x, self.const(one, "g"), self.const(zero, "beta"), self.const(zero, "mean"), self.const(one, "var")],
            "bn", epsilon=1e-5,
        )

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b])

    def flat(self, x: str, width: int) -> str:
        """(1, A*width, H, W) -> (H*W*A, width): SCRFD's per-anchor rows, as the real export lays them out."""
        t = self.op("Transpose", [x], perm=[0, 2, 3, 1])
        return self.op("Reshape", [t, self.const(np.array([-1, width], np.int64), "shape")])


def _scrfd_10g(net: _Net) -> tuple[str, list[tuple[str, str, int]]]:
    """SCRFD-10G-bnkps; returns the input name and the nine (output name, graph tensor, width) triples."""
    x = "input.1"
    # ResNetV1e deep stem: three 3x3 convolutions (the first with stride 2), then a stride-2 max pool.
    h = net.relu(net.conv(x, 3, 28, stride=2))
    h = net.relu(net.conv(h, 28, 28))
    h = net.relu(net.conv(h, 28, 56))
    h = net.op("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    features, cin = [], 56
    for blocks, planes, stride in zip((3, 4, 2, 3), (56, 88, 88, 224), (1, 2, 2, 2)):
        for i in range(blocks):
            s = stride if i == 0 else 1
            out = net.relu(net.conv(h, cin, planes, stride=s))
            out = net.conv(out, planes, planes, gain=0.2)
            identity = h
            if s != 1 or cin != planes:  # avg_down: average pool, then a 1x1 convolution
                if s != 1:
                    identity = net.op("AveragePool", [identity], kernel_shape=[s, s], strides=[s, s], ceil_mode=1)
                identity = net.conv(identity, cin, planes, k=1)
            h = net.relu(net.add(out, identity))
            cin = planes
        features.append((h, planes))
    # PAFPN on the stride 8, 16, 32 outputs (start_level=1), 56 channels, no norms or activations.
    levels = features[1:]
    lateral = [net.conv(f, c, 56, k=1) for f, c in levels]
    for i in (2, 1):  # top-down
        up = net.op("Resize", [lateral[i], "", net.const(np.array([1, 1, 2, 2], np.float32), "scales")], mode="nearest")
        lateral[i - 1] = net.add(lateral[i - 1], up)
    inter = [net.conv(t, 56, 56) for t in lateral]
    for i in (0, 1):  # bottom-up
        inter[i + 1] = net.add(inter[i + 1], net.conv(inter[i], 56, 56, stride=2))
    outs = [inter[0]] + [net.conv(t, 56, 56) for t in inter[1:]]
    # One head per stride: three 3x3 convolutions (80 channels, BN folded, ReLU), then cls / reg / kps.
    scores, boxes, kpss = [], [], []
    for stride, feat in zip(STRIDES, outs):
        t, c = feat, 56
        for _ in range(3):
            t, c = net.relu(net.conv(t, c, 80)), 80
        cls = net.op("Sigmoid", [net.flat(net.conv(t, 80, NUM_ANCHORS * 1), 1)])
        reg = net.op(
            "Mul", [net.flat(net.conv(t, 80, NUM_ANCHORS * 4), 4), net.const(np.array(1.0, np.float32), "scale")]
        )
        kps = net.flat(net.conv(t, 80, NUM_ANCHORS * 10), 10)
        # Pin the outputs (module docstring): all scores 0, except one face at the pinned anchor.
        cls = net.op("Mul", [cls, net.const(np.array(0.0, np.float32), "zero")], "pin")
        if stride == _PIN_STRIDE:
            bbox_t, kps_t = anchor_targets(STANDIN_FACE_BOX_DET, _PIN_CENTRE, _PIN_STRIDE)
            row = net.const(np.array([[_PIN_INDEX]], np.int64), "row")
            cls = net.op("ScatterND", [cls, net.const(np.array([[_PIN_INDEX, 0]], np.int64), "cell"),
                                       net.const(np.array([STANDIN_FACE_SCORE], np.float32), "score")], "pin")
            reg = net.op("ScatterND", [reg, row, net.const(bbox_t[None], "box")], "pin")
            kps = net.op("ScatterND", [kps, row, net.const(kps_t[None], "kps")], "pin")
        scores.append((f"score_{stride}", cls, 1))
        boxes.append((f"bbox_{stride}", reg, 4))
        kpss.append((f"kps_{stride}", kps, 10))
    return x, scores + boxes + kpss  # insightface reads outputs in this order: scores, boxes, keypoints


def _iresnet100(net: _Net) -> tuple[str, str]:
    """IResNet-100 (insightface arcface_torch `iresnet100`), 112x112 -> 512."""
    x = "input.1"
    h = net.prelu(net.conv(x, 3, 64), 64)  # conv1 + bn1 (folded) + prelu
    cin = 64
    for blocks, planes in zip((3, 13, 30, 3), (64, 128, 256, 512)):
        for i in range(blocks):
            s = 2 if i == 0 else 1
            out = net.batchnorm(h, cin)  # bn1 acts on the block input (also the shortcut): not foldable
            out = net.prelu(net.conv(out, cin, planes), planes)  # conv1 + bn2 (folded) + prelu
            out = net.conv(out, planes, planes, stride=s, gain=0.2)  # conv2 + bn3 (folded)
            identity = net.conv(h, cin, planes, k=1, stride=s) if i == 0 else h
            h = net.add(out, identity)
            cin = planes
    h = net.batchnorm(h, 512)  # bn2 (7x7x512)
    h = net.op("Flatten", [h], axis=1)
    fc = net.rng.standard_normal((512 * 7 * 7, 512), dtype=np.float32) * np.float32(np.sqrt(1.0 / (512 * 7 * 7)))
    h = net.op("Gemm", [h, net.const(fc), net.const(np.zeros(512, np.float32), "b")], "fc")
    return x, net.batchnorm(h, 512)  # features (BatchNorm1d)


def _genderage(net: _Net) -> tuple[str, str]:
    """A small MobileNet-style network, 96x96 -> [female, male, age / 100]."""
    x = "data"
    h, c = net.relu(net.conv(x, 3, 16, stride=2)), 16
    for cout, stride in ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1)):
        h = net.relu(net.conv(h, c, c, stride=stride, group=c))  # depthwise
        h, c = net.relu(net.conv(h, c, cout, k=1)), cout  # pointwise
    h = net.op("Flatten", [net.op("GlobalAveragePool", [h])], axis=1)
    w = net.rng.standard_normal((256, 3), dtype=np.float32) * np.float32(0.01)
    return x, net.op("Gemm", [h, net.const(w), net.const(np.array([0.2, 0.8, 0.3], np.float32), "b")], "fc")


def build_standin_antelopev2(folder: str | Path, seed: int = 0) -> Path:
    """Write TIMING-ONLY stand-ins of antelopev2's three models used by idrift into `folder`; returns it.

    Real architectures (hence real cost), seeded random weights (hence meaningless identities), and a
    pinned detection of one face (module docstring). Never use them for identity numbers.
    """
    from onnx import TensorProto, helper

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    f32 = TensorProto.FLOAT

    net = _Net(seed)
    x, outputs = _scrfd_10g(net)
    graph_outputs = []
    for name, tensor, width in outputs:
        net.nodes.append(helper.make_node("Identity", [tensor], [name], name=name + "_out"))
        graph_outputs.append(helper.make_tensor_value_info(name, f32, [f"n_{name}", width]))
    det_in = helper.make_tensor_value_info(x, f32, [1, 3, "height", "width"])  # dynamic, like the real file
    save_model(helper.make_graph(net.nodes, "scrfd_10g_bnkps_standin", [det_in], graph_outputs, initializer=net.inits),
          folder / "scrfd_10g_bnkps.onnx")

    net = _Net(seed + 1)
    x, out = _iresnet100(net)
    net.nodes.append(helper.make_node("Identity", [out], ["fc1"], name="fc1_out"))
    save_model(helper.make_graph(net.nodes, "glintr100_standin",
                            [helper.make_tensor_value_info(x, f32, ["batch", 3, 112, 112])],
                            [helper.make_tensor_value_info("fc1", f32, ["batch", 512])], initializer=net.inits),
          folder / "glintr100.onnx")

    net = _Net(seed + 2)
    x, out = _genderage(net)
    net.nodes.append(helper.make_node("Identity", [out], ["fc1"], name="fc1_out"))
    save_model(helper.make_graph(net.nodes, "genderage_standin",
                            [helper.make_tensor_value_info(x, f32, [1, 3, 96, 96])],
                            [helper.make_tensor_value_info("fc1", f32, [1, 3])], initializer=net.inits),
          folder / "genderage.onnx")
    return folder


def standin_face_box(image_hw: tuple[int, int], det_size: tuple[int, int] = (640, 640)) -> tuple[float, ...]:
    """Where the timing stand-in's pinned face lands in an image of `image_hw` (height, width), as
    insightface maps it back (it letterboxes the image into the top-left of the detector input)."""
    h, w = image_hw
    dw, dh = det_size
    new_h = dh if h / w > dh / dw else int(dw * (h / w))
    scale = new_h / h
    return tuple(v / scale for v in STANDIN_FACE_BOX_DET)


def multiply_adds(path: str | Path, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of the Conv and Gemm nodes of an ONNX model for one input of `input_shape`
    (from onnx shape inference; the other ops are cheap). Used to document the stand-ins' cost."""
    import onnx

    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, input_shape):
        dim.Clear()
        dim.dim_value = int(value)
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in inferred.graph.node:
        if node.op_type == "Conv":
            _, cin_per_group, kh, kw = weights[node.input[1]]
            total += int(np.prod(shapes[node.output[0]])) * cin_per_group * kh * kw
        elif node.op_type == "Gemm":
            k, n = weights[node.input[1]]
            total += shapes[node.output[0]][0] * k * n
    return total
