"""The ArcFace (antelopev2) backend without its weights: folder checks, provider choice, and the
loading/detection path run on synthetic ONNX files (see tests/conftest.py: no real antelopev2
weights exist offline, so the models are stand-ins with the real files' names and tensor shapes)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from idrift.errors import IdriftError, ModelFolderError
from idrift.faces.arcface import (
    ENV_VAR,
    REQUIRED_FILES,
    ArcFaceBackend,
    resolve_antelopev2,
)
from idrift.faces.onnx_providers import GPU_FIX, provider_report, select_providers

EXPECTED = ", ".join(REQUIRED_FILES.values())


def assert_says_how_to_fix(message: str):
    assert "--antelopev2" in message and "--idrift-antelopev2" in message and ENV_VAR in message


# ------------------------------------------------------------------------------------------------
# Folder checks: each problem is a ModelFolderError naming the folder, the files and the option.


def test_no_folder_given(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.insightface/models/antelopev2 either
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "insightface"))
    with pytest.raises(ModelFolderError, match="no antelopev2 folder given") as info:
        ArcFaceBackend(None)
    assert_says_how_to_fix(str(info.value))


def test_missing_folder(tmp_path):
    with pytest.raises(ModelFolderError) as info:
        resolve_antelopev2(tmp_path / "nowhere")
    message = str(info.value)
    assert f"{tmp_path / 'nowhere'} does not exist" in message and EXPECTED in message
    assert_says_how_to_fix(message)


def test_file_instead_of_folder(tmp_path):
    (tmp_path / "glintr100.onnx").write_bytes(b"x")
    with pytest.raises(ModelFolderError, match="is a file, not a folder"):
        resolve_antelopev2(tmp_path / "glintr100.onnx")


def test_empty_folder(tmp_path):
    # What insightface's failed download leaves behind: an empty models/antelopev2.
    (tmp_path / "models" / "antelopev2").mkdir(parents=True)
    with pytest.raises(ModelFolderError) as info:
        resolve_antelopev2(tmp_path)
    message = str(info.value)
    assert (
        f"{tmp_path / 'models' / 'antelopev2'} is empty" in message
        and EXPECTED in message
        and "never downloads" in message
    )
    assert_says_how_to_fix(message)


def test_zip_unpacked_one_level_too_deep(tmp_path, synthetic_antelopev2):
    shutil.copytree(synthetic_antelopev2.folder, tmp_path / "antelopev2" / "antelopev2")
    with pytest.raises(ModelFolderError, match="unpacked one level too deep"):
        resolve_antelopev2(tmp_path / "antelopev2")


def test_partial_folder_lists_missing_files(tmp_path, synthetic_antelopev2):
    shutil.copy(synthetic_antelopev2.folder / "glintr100.onnx", tmp_path)
    with pytest.raises(ModelFolderError) as info:
        resolve_antelopev2(tmp_path)
    message = str(info.value)
    assert "lacks scrfd_10g_bnkps.onnx, genderage.onnx (found glintr100.onnx" in message
    assert_says_how_to_fix(message)


def test_both_folder_layouts_and_the_environment_variable(tmp_path, synthetic_antelopev2, monkeypatch):
    root = tmp_path / "insightface_root"
    shutil.copytree(synthetic_antelopev2.folder, root / "models" / "antelopev2")
    assert resolve_antelopev2(root) == root / "models" / "antelopev2"  # insightface's root
    assert resolve_antelopev2(root / "models" / "antelopev2") == root / "models" / "antelopev2"  # the folder itself
    monkeypatch.setenv(ENV_VAR, str(root))
    assert resolve_antelopev2(None) == root / "models" / "antelopev2"


def test_corrupt_model_file(tmp_path, synthetic_antelopev2):
    folder = shutil.copytree(synthetic_antelopev2.folder, tmp_path / "antelopev2")
    (folder / "glintr100.onnx").write_bytes(b"\x00not a protobuf" * 100)
    with pytest.raises(ModelFolderError, match=r"glintr100\.onnx cannot be loaded as an ONNX model .* copy it again"):
        ArcFaceBackend(folder, det_size=(160, 160))


def test_model_in_the_wrong_slot(tmp_path, synthetic_antelopev2):
    folder = shutil.copytree(synthetic_antelopev2.folder, tmp_path / "antelopev2")
    shutil.copy(folder / "genderage.onnx", folder / "glintr100.onnx")
    with pytest.raises(
        ModelFolderError,
        match=r"glintr100\.onnx should be the recognition model, but insightface recognises it as genderage",
    ):
        ArcFaceBackend(folder, det_size=(160, 160))


def test_det_size_is_checked(synthetic_antelopev2):
    with pytest.raises(ValueError, match="multiples of 32"):
        ArcFaceBackend(synthetic_antelopev2.folder, det_size=(100, 100))


# ------------------------------------------------------------------------------------------------
# Providers


def test_select_providers():
    # This environment's onnxruntime, whichever wheel is installed (CPU, or GPU after the README's GPU line):
    import onnxruntime

    gpu_wheel = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    assert select_providers() == (["CUDAExecutionProvider"] if gpu_wheel else []) + ["CPUExecutionProvider"]
    assert select_providers(["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert select_providers(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    with pytest.raises(RuntimeError, match="neither"):
        select_providers(["AzureExecutionProvider"])


def test_provider_report_on_this_machine():
    from importlib import metadata

    import onnxruntime

    report = provider_report()
    assert report["imported"]["version"] == onnxruntime.__version__  # the module in use, not a wheel's metadata
    installed = {d.metadata["Name"]: d.version for d in metadata.distributions()}
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        assert report["distributions"][dist] == installed.get(dist)
    assert report["double_install"] == all(report["distributions"].values())
    assert "CPUExecutionProvider" in report["available_providers"]
    assert report["selected_providers"] == select_providers(onnxruntime.get_available_providers())
    import torch

    assert report["torch_cuda"] is torch.cuda.is_available()
    if not torch.cuda.is_available():
        assert report["warning"] is None


def test_provider_report_flags_a_cpu_and_gpu_double_install():
    both = {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"}
    report = provider_report(available=["CUDAExecutionProvider", "CPUExecutionProvider"], distributions=both,
                             torch_cuda=True)
    assert report["double_install"] is True
    assert "onnxruntime 1.32.0" in report["double_install_note"]
    assert "onnxruntime-gpu 1.31.1" in report["double_install_note"]
    single = provider_report(available=["CPUExecutionProvider"], distributions={"onnxruntime": "1.32.0",
                                                                                  "onnxruntime-gpu": None})
    assert single["double_install"] is False and single["double_install_note"] is None


def test_provider_report_warns_when_cpu_wheel_overwrote_gpu_wheel():
    cpu_only = ["CPUExecutionProvider"]
    both = {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.32.0"}
    report = provider_report(available=cpu_only, distributions=both, torch_cuda=True)
    assert report["warning"].startswith("WARNING") and "overwrote" in report["warning"] and GPU_FIX in report["warning"]
    only_cpu_wheel = provider_report(
        available=cpu_only, distributions={"onnxruntime": "1.32.0", "onnxruntime-gpu": None}, torch_cuda=True
    )
    assert GPU_FIX in only_cpu_wheel["warning"] and "overwrote" not in only_cpu_wheel["warning"]
    good = provider_report(
        available=["CUDAExecutionProvider", "CPUExecutionProvider"], distributions=both, torch_cuda=True
    )
    assert good["warning"] is None and good["selected_providers"][0] == "CUDAExecutionProvider"
    assert provider_report(available=cpu_only, distributions=both, torch_cuda=False)["warning"] is None


# ------------------------------------------------------------------------------------------------
# Loading and detection, on the synthetic models


@pytest.fixture(scope="module")
def arcface(synthetic_antelopev2):
    return ArcFaceBackend(synthetic_antelopev2.folder, det_size=(160, 160))


@pytest.fixture(scope="module")
def image_320(astronaut):
    import cv2

    return cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)  # colourful: channel order matters


def test_detect_runs_the_insightface_path(arcface, image_320, synthetic_antelopev2):
    faces = arcface.detect(image_320)
    assert len(faces) == 1  # the 0.3 candidate is below det_threshold 0.5
    face = faces[0]
    scale = 320 / synthetic_antelopev2.det_size  # the detector sees the image at 160 px
    assert face.bbox == pytest.approx(tuple(v * scale for v in synthetic_antelopev2.face_box_det))
    assert face.score == pytest.approx(0.9)
    assert face.age is None  # the identity metric does not pay for the age model
    [aged] = arcface.detect(image_320, with_age=True)
    assert aged.age == synthetic_antelopev2.age
    assert np.array_equal(aged.embedding, face.embedding)
    assert face.embedding.shape == (512,) and abs(np.linalg.norm(face.embedding) - 1) < 1e-5
    assert face.kps.shape == (5, 2) and face.kps[0, 0] < face.kps[1, 0]


def test_embedding_sees_rgb_in_network_order(arcface, image_320, synthetic_antelopev2):
    # The backend gets RGB, hands insightface BGR, and insightface's swapRB gives the network RGB.
    # Recompute the synthetic recogniser by hand on the RGB crop: a channel mix-up would not match.
    from insightface.utils.face_align import norm_crop

    face = arcface.detect(image_320)[0]
    crop = norm_crop(image_320, face.kps, 112).astype(np.float64)
    blob = (crop - 127.5) / 127.5
    pooled = blob.reshape(8, 14, 8, 14, 3).mean(axis=(1, 3)).transpose(2, 0, 1).ravel()  # (3, 8, 8) -> 192
    expected = pooled @ synthetic_antelopev2.projection().astype(np.float64)
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(face.embedding, expected, atol=1e-5)
    swapped = (
        blob[:, :, ::-1].reshape(8, 14, 8, 14, 3).mean(axis=(1, 3)).transpose(2, 0, 1).ravel()
        @ synthetic_antelopev2.projection()
    )
    assert np.abs(face.embedding - swapped / np.linalg.norm(swapped)).max() > 1e-2


def test_det_threshold_reaches_the_detector(synthetic_antelopev2, image_320):
    low = ArcFaceBackend(synthetic_antelopev2.folder, det_threshold=0.2, det_size=(160, 160))
    assert sorted(round(f.score, 2) for f in low.detect(image_320)) == [0.3, 0.9]


def test_provenance_records_the_providers_used(arcface, synthetic_antelopev2):
    prov = arcface.provenance()
    assert prov["backend"] == "arcface" and prov["folder"] == str(synthetic_antelopev2.folder)
    assert set(prov["models"]) == set(REQUIRED_FILES.values())
    selected = select_providers()  # CPU, or CUDA first after the README's GPU install
    assert prov["onnxruntime"]["selected_providers"] == selected
    if selected == ["CPUExecutionProvider"]:
        assert prov["providers"] == {role: ["CPUExecutionProvider"] for role in REQUIRED_FILES}
        assert prov["cuda_libraries"] is None and "warning" not in prov  # CUDA was not asked for
    else:  # the sessions record what they really got: CUDA where it works, else CPU with a warning
        assert all(got[-1] == "CPUExecutionProvider" for got in prov["providers"].values())
        assert isinstance(prov["cuda_libraries"], str)


def test_provenance_warns_when_cuda_was_asked_for_but_sessions_run_on_the_cpu(synthetic_antelopev2):
    # This machine's onnxruntime has no CUDA provider: asked for it, the sessions come up on the CPU.
    # That silent fallback is what a GPU runner with a broken onnxruntime-gpu install sees; it must show.
    backend = ArcFaceBackend(synthetic_antelopev2.folder, det_size=(160, 160),
                             providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    prov = backend.provenance()
    assert prov["providers"] == {role: ["CPUExecutionProvider"] for role in REQUIRED_FILES}
    assert isinstance(prov["cuda_libraries"], str)
    assert "CUDA provider was requested" in prov["warning"] and "detection" in prov["warning"]


def test_build_identity_set_applies_the_age_filter_with_an_age_model(
    tmp_path, arcface, image_320, synthetic_antelopev2
):
    # With an age model the filter is applied (the synthetic genderage says 34 for every face).
    from PIL import Image

    from idrift.data.identity_builder import build_identity_set

    Image.fromarray(image_320).save(tmp_path / "a.png")
    with pytest.raises(IdriftError, match="no photo .* passed the filters"):
        build_identity_set(tmp_path, tmp_path / "m.json", arcface, min_age=40)
    assert "estimated age 34 is under 40" in (tmp_path / "m.rejected.jsonl").read_text()
    manifest = build_identity_set(tmp_path, tmp_path / "m.json", arcface, min_age=18)
    assert manifest.entries[0].age == synthetic_antelopev2.age
    assert manifest.created_with["filters"]["min_age"]["applied"] is True


# ------------------------------------------------------------------------------------------------
# Reference faces as InfiniteYou finds them: 640, then 320, then 160 px; the largest face.


@pytest.mark.parametrize("face_at", [640, 320, 160])
def test_reference_detection_falls_back_from_640_to_320_to_160(tmp_path, astronaut, face_at):
    """A detector that finds the face only at one detection size (a dynamic-input stand-in): the reference
    is found at the first size of 640, 320, 160 that finds it, in the photo's own pixels."""
    from idrift.faces.select import find_reference
    from idrift.faces.synthetic import SYNTH_FACE_BOX_DET, build_synthetic_antelopev2

    backend = ArcFaceBackend(build_synthetic_antelopev2(tmp_path, face_at_det_size=face_at))
    assert backend.static_det_size is None and backend.reference_det_sizes == ((640, 640), (320, 320), (160, 160))
    assert [len(backend.detect(astronaut, det_size=(s, s))) for s in (640, 320, 160)] == [
        int(s == face_at) for s in (640, 320, 160)]
    found = find_reference(backend, astronaut, source="astronaut.png")
    assert found.det_size == (face_at, face_at) and found.n_faces == 1
    scale = astronaut.shape[1] / face_at  # the detector saw the 512 px photo at face_at px
    assert found.face.bbox == pytest.approx(tuple(v * scale for v in SYNTH_FACE_BOX_DET), abs=1e-3)
    assert backend.provenance()["reference_det_sizes"] == [[640, 640], [320, 320], [160, 160]]


def test_reference_detection_with_no_face_at_any_size_names_the_photo(tmp_path, astronaut):
    from idrift.errors import NoFaceError
    from idrift.faces.select import find_reference
    from idrift.faces.synthetic import build_synthetic_antelopev2

    backend = ArcFaceBackend(build_synthetic_antelopev2(tmp_path, face_at_det_size=480))  # never tried
    with pytest.raises(NoFaceError, match=r"^astronaut\.png: no face found"):
        find_reference(backend, astronaut, source="astronaut.png")


def test_a_static_detector_runs_at_its_own_size_only(arcface):
    assert arcface.static_det_size == (160, 160) and arcface.reference_det_sizes == ((160, 160),)


def test_reference_with_several_faces_uses_the_largest_and_counts_them(synthetic_antelopev2, image_320):
    from idrift.faces.select import find_reference

    low = ArcFaceBackend(synthetic_antelopev2.folder, det_threshold=0.2, det_size=(160, 160))
    found = find_reference(low, image_320, source="two.png")
    assert found.n_faces == 2 and found.face.score == pytest.approx(0.9)
    assert found.face.area == max(f.area for f in low.detect(image_320))


def test_model_root_defaults_to_insightfaces_own_root(monkeypatch, tmp_path, synthetic_antelopev2):
    """No --antelopev2 and no IDRIFT_ANTELOPEV2: insightface's own root ($INSIGHTFACE_HOME, else
    ~/.insightface), where FaceAnalysis(name="antelopev2") keeps the models."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("INSIGHTFACE_HOME", raising=False)
    shutil.copytree(synthetic_antelopev2.folder, home / ".insightface" / "models" / "antelopev2")
    assert resolve_antelopev2(None) == home / ".insightface" / "models" / "antelopev2"
    custom = tmp_path / "custom"
    shutil.copytree(synthetic_antelopev2.folder, custom / "models" / "antelopev2")
    monkeypatch.setenv("INSIGHTFACE_HOME", str(custom))
    assert resolve_antelopev2(None) == custom / "models" / "antelopev2"
    assert ArcFaceBackend(None, det_size=(160, 160)).folder == custom / "models" / "antelopev2"


def test_weights_check_finds_antelopev2_in_insightfaces_root(monkeypatch, tmp_path, synthetic_antelopev2):
    from idrift.models.paths import WeightPaths
    from idrift.models.weights_check import check_weights

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "if_home"))
    paths = WeightPaths(infiniteyou=str(tmp_path / "InfiniteYou"))  # holds no supports/insightface
    [missing] = check_weights(paths, ["antelopev2"])
    assert not missing.found and str(tmp_path / "if_home" / "models" / "antelopev2") in missing.problems[0]
    shutil.copytree(synthetic_antelopev2.folder, tmp_path / "if_home" / "models" / "antelopev2")
    [found] = check_weights(paths, ["antelopev2"])
    assert found.found and found.path == str(tmp_path / "if_home" / "models" / "antelopev2")
    (tmp_path / "InfiniteYou" / "supports" / "insightface" / "models").mkdir(parents=True)
    shutil.copytree(synthetic_antelopev2.folder,
                    tmp_path / "InfiniteYou" / "supports" / "insightface" / "models" / "antelopev2")
    assert paths.location("antelopev2").is_relative_to(tmp_path / "InfiniteYou")  # the InfiniteYou copy first


LOWEST_INSIGHTFACE = "IDRIFT_INSIGHTFACE_LOWEST"  # a folder with the lowest allowed insightface installed (--target)


@pytest.mark.skipif(not __import__("os").environ.get(LOWEST_INSIGHTFACE),
                    reason=f"set {LOWEST_INSIGHTFACE} to a folder holding insightface 0.7.3 "
                           "(pip install --target; .ci/run does)")
def test_backend_runs_on_the_lowest_allowed_insightface(tmp_path, synthetic_antelopev2):
    """insightface 0.7.3 (InfiniteYou's pin, pyproject's floor) has no detect(det_thresh=): the backend must
    run on it, threshold and fallback included. In a subprocess with that insightface first on the path."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from idrift.faces.synthetic import build_synthetic_antelopev2

    repo = Path(__file__).resolve().parents[1]
    dynamic = build_synthetic_antelopev2(tmp_path / "dyn", face_at_det_size=320)
    code = f"""
import insightface, numpy as np
from skimage import data
from idrift.faces.arcface import ArcFaceBackend
from idrift.faces.select import find_reference
assert insightface.__version__ == "0.7.3", insightface.__version__
low = ArcFaceBackend({str(synthetic_antelopev2.folder)!r}, det_threshold=0.2, det_size=(160, 160))
image = np.ascontiguousarray(data.astronaut())
assert sorted(round(f.score, 2) for f in low.detect(image)) == [0.3, 0.9]
assert len(ArcFaceBackend({str(synthetic_antelopev2.folder)!r}, det_size=(160, 160)).detect(image)) == 1
found = find_reference(ArcFaceBackend({str(dynamic)!r}), image, source="astronaut")
assert found.det_size == (320, 320), found
print("ok", insightface.__version__)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.environ[LOWEST_INSIGHTFACE], str(repo)]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok 0.7.3" in out.stdout, out.stderr[-3000:]
