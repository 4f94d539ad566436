"""Shared test fixtures. Face layer: real photographs from installed packages, the dlib backend
loaded once per session, and a synthetic antelopev2 folder (see `build_synthetic_antelopev2`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from idrift.faces.synthetic import (
    SYNTH_AGE,
    SYNTH_DET_SIZE,
    SYNTH_FACE_BOX_DET,
    build_synthetic_antelopev2,
    synthetic_projection,
)


@pytest.fixture()
def no_user_weight_settings(monkeypatch, tmp_path):
    """The machine's IDRIFT_* weight variables must not leak into a test; the Hugging Face cache is empty."""
    from idrift.models.paths import WEIGHT_OPTIONS

    for opt in WEIGHT_OPTIONS:
        monkeypatch.delenv(opt.env, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


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
# A synthetic antelopev2 folder, built by idrift.faces.synthetic.build_synthetic_antelopev2. No real
# antelopev2 weights exist offline, so these ONNX files have the real files' names, input/output names
# and shapes (so insightface routes and runs them exactly as the real ones) but fixed, known behaviour:
#   detector: always reports one face at FACE_BOX (score 0.9) and a weak one (score 0.3), for a
#             160x160 input (the detector's static size), i.e. coordinates x2 for a 320x320 image;
#   recogniser: 8x8 average pooling of the aligned 112x112 crop, then a fixed random projection to 512-d;
#   genderage: always [0.2, 0.8, 0.34] -> male, age 34.


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


# ---- the tiny InfiniteYou pipeline (tests/tiny_runs.py builds the parts) -----------------------------
@pytest.fixture()
def pipe():
    """A fresh pipeline on the tiny bundle: tests accelerate it, cache steps or move weights in place.
    A module that never changes it may override this with a module-scoped one (test_pipeline does)."""
    from idrift.models.tiny import build_tiny_bundle
    from idrift.pipeline.infinite_you import InfiniteYouPipeline

    return InfiniteYouPipeline(build_tiny_bundle())


@pytest.fixture(scope="session")
def reference():
    """The tiny runs' identity reference (a real photograph's face)."""
    from tiny_runs import tiny_reference

    return tiny_reference()
