"""The paper's face backend: insightface antelopev2 (SCRFD detector, ArcFace glintr100, genderage).

The models are loaded straight from their ONNX files with `insightface.model_zoo.get_model`; insightface's
`FaceAnalysis` is never used, because with a missing or empty folder it tries to download antelopev2
(impossible offline, leaving an empty `models/` behind) and then dies on a bare AssertionError. The
folder is checked first instead, and every problem is a `ModelFolderError` that names the folder, the
files expected, and how to point idrift at the right one.

`model_root` may be either
  - insightface's root, holding `models/antelopev2/` (e.g. `~/.insightface`), or
  - the `antelopev2/` folder itself (the five .onnx files of antelopev2.zip);
None reads the folder from the environment variable `IDRIFT_ANTELOPEV2`, else uses insightface's own
model root (`$INSIGHTFACE_HOME/models/antelopev2`, then `~/.insightface/models/antelopev2`) when it holds one.

Reference faces are found as InfiniteYou's own code finds them (`detect_reference`): detection at 640 px,
then 320, then 160 when nothing is found (a face that fills the photo is too large for SCRFD's anchors at
640), and the largest face of the first size that finds any. A detector with a static input size (the
test stand-ins) runs at that size only.

insightface: only calls that every allowed version has (0.7.3, which InfiniteYou pins, and later): the
detection threshold is the detector's `det_thresh`, set by `prepare(..., det_thresh=)`, never a
`detect(..., det_thresh=)` argument, which 0.7.3 does not accept.

insightface works on BGR images (OpenCV order): `detect` takes RGB like every idrift backend and
flips the channels once; the models' own preprocessing (`blobFromImage(..., swapRB=True)`) turns them
back to RGB for the networks.

Example (needs the real antelopev2 files):
    >>> backend = ArcFaceBackend("~/.insightface")  # doctest: +SKIP
    >>> faces = backend.detect(rgb_image)            # doctest: +SKIP
    >>> backend.provenance()["providers"]["recognition"]  # doctest: +SKIP
    ['CUDAExecutionProvider', 'CPUExecutionProvider']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from idrift.errors import ModelFolderError, NonFiniteError
from idrift.faces.base import DetectedFace
from idrift.faces.image_io import as_rgb_uint8
from idrift.faces.onnx_providers import CUDA, preload_cuda_libraries, provider_report, select_providers
from idrift.provenance import dist_version, file_sha256_short

VERSION = "antelopev2-scrfd-glintr100/1"
ENV_VAR = "IDRIFT_ANTELOPEV2"
HOW_TO_SET = (
    f"set it with --antelopev2 DIR (idrift command line), --idrift-antelopev2 DIR (pytest) or the environment "
    f"variable {ENV_VAR}; DIR is the antelopev2 folder or an insightface root holding models/antelopev2"
)
# The files of antelopev2.zip that idrift uses, by role. (1k3d68.onnx and 2d106det.onnx, the landmark
# models, are part of the package but not needed.)
REFERENCE_DET_SIZES = (640, 320, 160)  # InfiniteYou's _detect_face: 640, then 320, then 160
REQUIRED_FILES = {
    "detection": "scrfd_10g_bnkps.onnx",
    "recognition": "glintr100.onnx",
    "genderage": "genderage.onnx",
}


def resolve_antelopev2(model_root: str | os.PathLike | None) -> Path:
    """The antelopev2 folder for `model_root` (see the module docstring), checked for the required files."""
    if model_root is None:
        from idrift.models.paths import insightface_antelopev2_candidates

        candidates = insightface_antelopev2_candidates()
        model_root = os.environ.get(ENV_VAR) or next((c for c in candidates if c.is_dir()), None)
        if not model_root:
            raise ModelFolderError(
                f"no antelopev2 folder given (the ArcFace identity metric needs one) and none in insightface's "
                f"model root ({', '.join(str(c) for c in candidates)}); {HOW_TO_SET}")
    root = Path(model_root).expanduser()
    expected = ", ".join(REQUIRED_FILES.values())
    if not root.exists():
        raise ModelFolderError(f"antelopev2 folder {root} does not exist (expected the files {expected}); {HOW_TO_SET}")
    if not root.is_dir():
        raise ModelFolderError(
            f"antelopev2 folder {root} is a file, not a folder (expected a folder holding {expected}); {HOW_TO_SET}"
        )
    nested = root / "models" / "antelopev2"
    folder = nested if nested.is_dir() else root
    onnx_files = sorted(p.name for p in folder.glob("*.onnx"))
    if not onnx_files:
        hint = ""
        if (folder / "antelopev2").is_dir() and any((folder / "antelopev2").glob("*.onnx")):
            hint = (
                f" (they are in {folder / 'antelopev2'}: antelopev2.zip was unpacked one level too deep; "
                "point idrift there or move them up)"
            )
        what = "is empty" if not any(folder.iterdir()) else "holds no .onnx files"
        raise ModelFolderError(
            f"antelopev2 folder {folder} {what}{hint}; expected the files {expected} from antelopev2.zip "
            f"(idrift never downloads them); {HOW_TO_SET}"
        )
    missing = [name for name in REQUIRED_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise ModelFolderError(
            f"antelopev2 folder {folder} lacks {', '.join(missing)} "
            f"(found {', '.join(onnx_files)}; expected {expected}); "
            f"copy the complete antelopev2 package there or {HOW_TO_SET}"
        )
    return folder




class ArcFaceBackend:
    """`FaceBackend` on insightface antelopev2: SCRFD detection, `norm_crop` alignment to 112 px,
    ArcFace (glintr100, 512-d, L2-normalised) embedding, genderage age estimate."""

    name = "arcface"
    version = VERSION
    has_age = True

    def __init__(
        self,
        model_root: str | os.PathLike | None,
        det_threshold: float = 0.5,
        det_size: tuple[int, int] = (640, 640),
        providers: Sequence[str] | None = None,
    ):
        if len(det_size) != 2 or any(int(v) <= 0 or int(v) % 32 for v in det_size):
            raise ValueError(f"det_size must be (width, height), positive multiples of 32, got {det_size!r}")
        self.folder = resolve_antelopev2(model_root)
        self.det_threshold = float(det_threshold)
        self.det_size = (int(det_size[0]), int(det_size[1]))
        self.providers_requested = list(providers) if providers is not None else select_providers()
        self.cuda_libraries = preload_cuda_libraries() if CUDA in self.providers_requested else None
        self._models = {role: self._load(role, self.folder / filename) for role, filename in REQUIRED_FILES.items()}
        self._detector = self._models["detection"]
        self._recognizer = self._models["recognition"]
        self._genderage = self._models["genderage"]
        if not getattr(self._detector, "use_kps", False):
            raise ModelFolderError(
                f"{self.folder / REQUIRED_FILES['detection']} is a detector without keypoint outputs; "
                "alignment needs the 5 keypoints of scrfd_10g_bnkps (the 'kps' variant)"
            )
        # ctx_id 0 keeps the requested providers (a negative ctx_id would force the CPU). prepare() sets the
        # detector's det_thresh in every insightface version; detect() then reads it.
        self._detector.prepare(0, input_size=self.det_size, det_thresh=self.det_threshold)
        # A detector whose ONNX input has a fixed size runs at that size only (no fallback).
        shape = self._detector.session.get_inputs()[0].shape  # (1, 3, H, W); names where the size is dynamic
        self.static_det_size = (int(shape[3]), int(shape[2])) if all(isinstance(v, int) for v in shape[2:4]) else None
        self._provenance: dict | None = None

    def _load(self, role: str, path: Path):
        from insightface.model_zoo import get_model

        try:
            model = get_model(str(path), providers=self.providers_requested)
        except Exception as exc:  # onnxruntime and onnx raise many unrelated types for a bad file
            raise ModelFolderError(
                f"{path} cannot be loaded as an ONNX model ({type(exc).__name__}: {exc}); the file is corrupt or "
                "not part of antelopev2; copy it again from antelopev2.zip"
            ) from exc
        task = getattr(model, "taskname", None)
        if task != role:
            raise ModelFolderError(
                f"{path} should be the {role} model, but insightface recognises it as {task or 'no known model'} "
                f"(from its input/output shapes); expected antelopev2's {REQUIRED_FILES[role]}"
            )
        return model

    @property
    def reference_det_sizes(self) -> tuple[tuple[int, int], ...]:
        """The detector sizes `detect_reference` tries, in order."""
        if self.static_det_size is not None:
            return (self.static_det_size,)
        return tuple((s, s) for s in REFERENCE_DET_SIZES)

    def detect_reference(
        self, image: np.ndarray, *, with_age: bool = False
    ) -> tuple[list[DetectedFace], tuple[int, int]]:
        """The faces of a reference photo as InfiniteYou finds them: at 640, else 320, else 160 px.
        Returns (faces, the detector size that found them; the last size tried when none did)."""
        faces: list[DetectedFace] = []
        for size in self.reference_det_sizes:
            faces = self.detect(image, with_age=with_age, det_size=size)
            if faces:
                break
        return faces, size

    def detect(
        self, image: np.ndarray, *, with_age: bool = False, det_size: tuple[int, int] | None = None
    ) -> list[DetectedFace]:
        """All faces above `det_threshold`, detected at `det_size` (default: the backend's)."""
        from insightface.app.common import Face
        from insightface.utils.face_align import norm_crop

        bgr = np.ascontiguousarray(as_rgb_uint8(image)[:, :, ::-1])
        size = self.det_size if det_size is None else (int(det_size[0]), int(det_size[1]))
        self._detector.det_thresh = self.det_threshold  # portable: detect(det_thresh=) is not in insightface 0.7.3
        det, kpss = self._detector.detect(bgr, input_size=size, max_num=0)
        faces = []
        for row, kps in zip(det, kpss):
            bbox = tuple(float(v) for v in row[:4])
            kps = np.asarray(kps, dtype=np.float32)
            aligned = norm_crop(bgr, landmark=kps, image_size=self._recognizer.input_size[0])
            feat = np.asarray(self._recognizer.get_feat(aligned), dtype=np.float64).ravel()
            norm = np.linalg.norm(feat)
            if not np.isfinite(norm) or norm == 0:
                raise NonFiniteError(
                    f"{self.folder / REQUIRED_FILES['recognition']} returned an embedding with norm {norm} "
                    f"for the face at {tuple(round(v) for v in bbox)}; the recognition model is broken"
                )
            age = None
            if with_age:  # genderage costs as much as the embedding on a CPU provider: only when asked
                age = float(self._genderage.get(bgr, Face(bbox=row[:4], kps=kps))[1])
            faces.append(
                DetectedFace(
                    bbox=bbox,
                    score=float(row[4]),
                    kps=kps,
                    embedding=(feat / norm).astype(np.float32),
                    age=age,
                )
            )
        return faces

    def session_providers(self) -> dict[str, list[str]]:
        """The providers each onnxruntime session actually runs on (may differ from those requested)."""
        return {role: list(model.session.get_providers()) for role, model in self._models.items()}

    def provenance(self) -> dict:
        if self._provenance is None:
            self._provenance = {
                "backend": self.name,
                "version": self.version,
                "folder": str(self.folder),
                "det_threshold": self.det_threshold,
                "det_size": list(self.det_size),
                "reference_det_sizes": [list(s) for s in self.reference_det_sizes],
                "models": {filename: file_sha256_short(self.folder / filename) for filename in REQUIRED_FILES.values()},
                "providers_requested": list(self.providers_requested),
                "providers": self.session_providers(),
                "cuda_libraries": self.cuda_libraries,
                "onnxruntime": provider_report(),
                "packages": {"insightface": dist_version("insightface")},
            }
            on_cpu = [role for role, got in self._provenance["providers"].items() if CUDA not in got]
            if CUDA in self.providers_requested and on_cpu:
                self._provenance["warning"] = (
                    f"the CUDA provider was requested but the {', '.join(on_cpu)} session(s) run on the CPU "
                    f"({self.cuda_libraries}): onnxruntime-gpu could not load CUDA/cuDNN; the face metric is slow")
        return dict(self._provenance)
