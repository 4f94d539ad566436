"""LPIPS on the real `lpips` package. Offline its VGG backbone is random, so the tests check
properties any LPIPS must have (zero on identical images, symmetric, growing with distortion,
batch-invariant) and the input contract, at small sizes to stay fast on a CPU."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from idrift.errors import ImageError, WeightsError
from idrift.metrics.lpips import VGG16_FILE, LPIPSMetric, to_unit_tensor

SIZE = 32  # the network input; VGG's fifth stage still has 2x2 pixels
PROPERTY_SETTINGS = settings(
    max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def metric():
    # One thread: on a shared two-core runner, two OpenMP threads fighting other processes made a
    # forward pass ten times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield LPIPSMetric(pretrained_backbone=False, size=SIZE, device="cpu")
    finally:
        torch.set_num_threads(threads)


def photo(seed: int, h: int = 40, w: int = 36) -> np.ndarray:
    """A smooth, structured uint8 image (gradients and stripes), more photo-like than white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    fx, fy, phase = rng.uniform(0.1, 0.6, 3)
    img = np.stack(
        [
            128 + 100 * np.sin(fx * xx + phase),
            128 + 100 * np.cos(fy * yy),
            255 * (xx + yy) / (h + w),
        ],
        axis=-1,
    )
    return np.clip(img, 0, 255).astype(np.uint8)


def noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


seeds = st.integers(min_value=0, max_value=10_000)
sides = st.integers(min_value=16, max_value=48)


# -- properties ----------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(seed=seeds, h=sides, w=sides)
def test_identical_images_have_distance_zero(metric, seed, h, w):
    img = photo(seed, h, w)
    assert metric.distance(img, img) == 0.0


@PROPERTY_SETTINGS
@given(seed=seeds, other=seeds)
def test_distance_is_symmetric_and_positive(metric, seed, other):
    a, b = photo(seed), noisy(photo(other), 10, seed)
    d_ab, d_ba = metric.distance_batch([a, b], [b, a])
    assert d_ab == pytest.approx(d_ba, rel=1e-6, abs=1e-9)
    assert d_ab > 0.0


@PROPERTY_SETTINGS
@given(seed=seeds, sigma=st.sampled_from([4.0, 8.0, 16.0]))
def test_distance_grows_with_noise(metric, seed, sigma):
    # Twice the noise must give a larger distance, averaged over two noise draws.
    base = photo(seed)
    pairs = [noisy(base, s, seed + k) for s in (sigma, 2 * sigma) for k in (0, 1)]
    d = metric.distance_batch([base] * 4, pairs, batch_size=4)
    assert np.mean(d[2:]) > np.mean(d[:2]) > 0.0


def test_batch_equals_single(metric):
    a = [photo(i, 40 + i, 30) for i in range(5)]  # mixed sizes: each is resized before batching
    b = [noisy(photo(i + 10), 20, i) for i in range(5)]
    single = [metric.distance(x, y) for x, y in zip(a, b)]
    for batch_size in (1, 2, 8):
        assert metric.distance_batch(a, b, batch_size=batch_size) == pytest.approx(single, rel=1e-5)


def test_input_forms_agree(metric):
    a, b = photo(1), photo(2)
    as_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1).float() / 255
    d = metric.distance(a, b)
    assert metric.distance(Image.fromarray(a), Image.fromarray(b)) == d
    assert metric.distance(as_tensor(a), as_tensor(b)[None]) == pytest.approx(d, rel=1e-6)


def test_resize_and_fit(metric):
    # A portrait-shaped generated image against a square reference, as in the paper's setup.
    generated, reference = photo(3, 48, 36), photo(4, 32, 32)
    stretched = metric.distance(generated, reference)
    cropped = metric.variant(fit="center_crop")
    assert cropped.model is metric.model  # a variant shares the network
    assert cropped.distance(generated, reference) != stretched
    # Cropping a square from a square is the identity.
    assert cropped.distance(reference, photo(5, 32, 32)) == metric.distance(reference, photo(5, 32, 32))
    assert "center_crop" in cropped.version and cropped.version != metric.version
    assert metric.variant(size=(48, 32)).version != metric.version


# -- accumulation --------------------------------------------------------------------------------


def test_update_and_compute(metric):
    m = metric.variant(pairing="paired_backbone")
    assert m.name == "lpips_paired_backbone" and metric.name == "lpips_reference"
    with pytest.raises(ValueError, match="no pairs measured yet"):
        m.compute()
    assert m.update("s0", photo(0), photo(0)) == 0.0
    assert m.compute() == {"mean": 0.0, "sem": None, "n": 1}
    values = m.update_many(["s1", "s2"], [photo(1), photo(2)], [photo(3), photo(4)])
    with pytest.raises(ValueError, match="pair 's1' was already measured"):
        m.update("s1", photo(1), photo(3))
    result = m.compute()
    expected = np.array([0.0, *values])
    assert result["n"] == 3
    assert result["mean"] == pytest.approx(expected.mean())
    assert result["sem"] == pytest.approx(expected.std(ddof=1) / np.sqrt(3))
    assert m.values == {"s0": 0.0, "s1": values[0], "s2": values[1]}
    m.reset()
    assert m.values == {}
    with pytest.raises(ValueError, match="images_a has 2 images but images_b has 1"):
        m.distance_batch([photo(0), photo(1)], [photo(2)])


# -- the input contract --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, message",
    [
        (Image.new("L", (32, 32)), r"PIL image in mode 'L'; expected mode 'RGB'"),
        (Image.new("RGBA", (32, 32)), r"mode 'RGBA'; expected mode 'RGB'"),
        (np.zeros((32, 32, 3), np.float32), r"numpy array of dtype float32; expected uint8 \(H, W, 3\)"),
        (np.zeros((32, 32), np.uint8), r"numpy array of shape \(32, 32\); expected \(H, W, 3\)"),
        (np.zeros((32, 32, 4), np.uint8), r"shape \(32, 32, 4\); expected \(H, W, 3\)"),
        (np.zeros((0, 32, 3), np.uint8), r"empty image"),
        (torch.zeros(3, 32, 32, dtype=torch.uint8),
         r"tensor of dtype torch.uint8; expected a float tensor in \[0, 1\]"),
        (torch.zeros(2, 3, 32, 32),
         r"tensor of shape \(2, 3, 32, 32\); expected one image, \(3, H, W\) or \(1, 3, H, W\)"),
        (torch.zeros(4, 32, 32), r"tensor of shape \(4, 32, 32\); expected one image"),
        (torch.full((3, 32, 32), float("nan")), r"NaN or inf; expected finite values in \[0, 1\]"),
        (torch.full((3, 32, 32), -0.5), r"values span \[-0.5, -0.5\]; expected \[0, 1\].*\(x \+ 1\) / 2"),
        (torch.full((3, 32, 32), 255.0), r"values span \[255, 255\]; expected \[0, 1\]"),
        ([[0, 0, 0]], r"got list; expected a PIL image in mode RGB, a uint8 numpy array"),
    ],
    ids=["pil-L", "pil-RGBA", "np-float", "np-2d", "np-4ch", "np-empty", "t-uint8", "t-batch", "t-4ch", "t-nan",
         "t-neg", "t-255", "list"],
)
def test_bad_inputs_name_the_expected_form(metric, bad, message):
    with pytest.raises(ImageError, match=message) as info:
        metric.update("k", photo(0), bad)
    assert str(info.value).startswith("image_b:")
    assert metric.values == {}  # nothing was recorded
    with pytest.raises(ImageError, match=r"images_a\[1\]"):
        metric.distance_batch([photo(0), bad], [photo(1), photo(2)])


def test_bad_options():
    with pytest.raises(ValueError, match="net='alex' is not supported"):
        LPIPSMetric("alex", pretrained_backbone=False)
    with pytest.raises(ValueError, match="pairing must be one of"):
        LPIPSMetric(pretrained_backbone=False, pairing="dev_vs_schnell")
    with pytest.raises(ValueError, match="size must be an int or"):
        LPIPSMetric(pretrained_backbone=False, size=8)
    with pytest.raises(TypeError):
        LPIPSMetric()  # the backbone choice is never implicit
    assert to_unit_tensor(photo(0)).shape == (1, 3, 40, 36)


# -- weights -------------------------------------------------------------------------------------


def test_random_backbone_is_seeded_and_leaves_the_global_rng_alone(metric):
    torch.manual_seed(123)
    expected_next = torch.rand(4)
    torch.manual_seed(123)
    again = LPIPSMetric(pretrained_backbone=False, size=SIZE, device="cpu")
    assert torch.equal(torch.rand(4), expected_next)  # building did not consume the caller's stream
    for p, q in zip(metric.model.parameters(), again.model.parameters()):
        assert torch.equal(p, q)
    prov = metric.provenance()
    assert prov["backbone"] == "random" and prov["backbone_seed"] == 0 and prov["backbone_sha256"] is None
    assert len(prov["linear_sha256"]) == 16
    assert "random0" in metric.version and f"{SIZE}x{SIZE}" in metric.version


def test_pretrained_backbone_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as info:
        LPIPSMetric(pretrained_backbone=True, size=SIZE, device="cpu")
    message = str(info.value)
    assert str(tmp_path / "hub" / "checkpoints" / VGG16_FILE) in message
    assert "never downloads" in message and "TORCH_HOME" in message


def test_pretrained_backbone_is_read_from_the_hub_cache(tmp_path, monkeypatch):
    # A stand-in for torchvision's VGG16 file with the real keys and shapes. Each tensor is one value
    # broadcast to its shape, so the file is 10 kB instead of 528 MB.
    import torchvision

    with torch.device("meta"):  # shapes only, no 138M-parameter initialisation
        shapes = {k: v.shape for k, v in torchvision.models.vgg16().state_dict().items()}
    state = {k: torch.full((1,) * len(s), 0.01 * (i + 1)).expand(s) for i, (k, s) in enumerate(sorted(shapes.items()))}
    path = tmp_path / "hub" / "checkpoints" / VGG16_FILE
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    m = LPIPSMetric(pretrained_backbone=True, size=SIZE, device="cpu")
    assert torch.all(m.model.net.slice1[0].weight == state["features.0.weight"][0, 0, 0, 0])
    prov = m.provenance()
    assert prov["backbone"] == "pretrained" and prov["backbone_weights"] == str(path)
    assert prov["backbone_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert "imagenet" in m.version
    assert m.distance(photo(0), photo(0)) == 0.0


def test_corrupt_pretrained_file_is_a_weights_error(tmp_path, monkeypatch):
    path = tmp_path / "hub" / "checkpoints" / VGG16_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"truncated")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match=rf"could not load the VGG16 weights {path}"):
        LPIPSMetric(pretrained_backbone=True, size=SIZE, device="cpu")


def test_the_real_profile_reads_vgg16_from_the_idrift_option(tmp_path, monkeypatch):
    """`--idrift-vgg16 FILE` (anywhere on disk) is what the real profile's LPIPS loads."""
    import torchvision

    from idrift.session import BenchmarkSession, SessionOptions

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.vgg16().state_dict().items()}
    state = {k: torch.full((1,) * len(s), 0.02).expand(s) for k, s in shapes.items()}
    weights = tmp_path / "elsewhere" / VGG16_FILE
    weights.parent.mkdir()
    torch.save(state, weights)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))  # nothing in the default place
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download"))
    session = BenchmarkSession(SessionOptions(profile="real", weights={"vgg16": str(weights)},
                                              cache_dir=str(tmp_path / "cache"), device="cpu"))
    metric = session.lpips_metric
    assert torch.all(metric.model.net.slice1[0].weight == 0.02)
    assert torch.hub.get_dir() == str(tmp_path / "empty-torch-home" / "hub")  # restored after the build
