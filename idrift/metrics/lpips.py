"""LPIPS (VGG) distance between pairs of images, as in the paper's Table 1 (lower is better).

Two pairings, same metric, chosen by the caller and recorded with each measurement:
- `pairing="reference"`: each generated image against the identity's reference face image (the
  paper's use: the sizes differ, e.g. 864x1152 generated vs 512x512 reference).
- `pairing="paired_backbone"`: two generated images of the same sample (identity, prompt, seed) from
  two configurations, e.g. FLUX.1-schnell 4 steps vs FLUX.1-dev 28 steps.

Both images of a pair are resized to one documented size before the network sees them: `size`
(default 256x256), bilinear with antialiasing. `fit="stretch"` (default) resizes the whole image and
ignores the aspect ratio; `fit="center_crop"` first crops the largest centred box of the target
aspect ratio. The size and fit are part of `version`, so stored values measured another way are
recomputed rather than compared.

Weights. The linear calibration layers ship inside the `lpips` package. The VGG16 backbone is either
- random (`pretrained_backbone=False`): built offline from a fixed seed, deterministic; distances are
  still a metric on images (0 for identical images, symmetric, growing with distortion) but not the
  perceptual LPIPS of the paper, so only relative and property checks mean anything; or
- torchvision's ImageNet weights (`pretrained_backbone=True`), read from the torch hub cache
  (`torch.hub.get_dir()/checkpoints/vgg16-397923af.pth`). idrift never downloads: a missing file is a
  `WeightsError` that names it.

Inputs, for either side of a pair: a PIL image in mode RGB, a uint8 numpy array HxWx3, or a float
torch tensor (3,H,W) or (1,3,H,W) with values in [0, 1].

Example:
    >>> import numpy as np
    >>> metric = LPIPSMetric(pretrained_backbone=False, size=64, device="cpu")
    >>> rng = np.random.default_rng(0)
    >>> face = rng.integers(0, 256, (80, 60, 3), dtype=np.uint8)
    >>> metric.update("id0|portrait|0", face, face)
    0.0
    >>> noisy = np.clip(face + rng.normal(0, 40, face.shape), 0, 255).astype(np.uint8)
    >>> metric.update("id0|beach|0", face, noisy) > 0
    True
    >>> sorted(metric.compute())
    ['mean', 'n', 'sem']
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from idrift.errors import ImageError, WeightsError
from idrift.provenance import file_sha256_short

Pairing = Literal["reference", "paired_backbone"]
PAIRINGS: tuple[str, ...] = ("reference", "paired_backbone")
FITS: tuple[str, ...] = ("stretch", "center_crop")
VGG16_FILE = "vgg16-397923af.pth"  # torchvision's VGG16_Weights.IMAGENET1K_V1 file name
_IMPL_REVISION = 1  # bump when idrift's preprocessing changes, so stored values are recomputed

_EXPECTED = ("a PIL image in mode RGB, a uint8 numpy array of shape (H, W, 3), "
             "or a float torch tensor of shape (3, H, W) or (1, 3, H, W) with values in [0, 1]")


def vgg16_weights_path() -> Path:
    """Where torchvision caches the ImageNet VGG16 weights (honours TORCH_HOME / torch.hub.set_dir)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE



def _lpips_module():
    import lpips  # imported here: it pulls in torchvision

    return lpips


def _check_options(pairing: str, size: int | tuple[int, int], fit: str) -> tuple[str, tuple[int, int], str]:
    if pairing not in PAIRINGS:
        raise ValueError(f"LPIPSMetric: pairing must be one of {PAIRINGS}, got {pairing!r}")
    if fit not in FITS:
        raise ValueError(f"LPIPSMetric: fit must be one of {FITS}, got {fit!r}")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    # Below 16 px the fifth VGG stage has no pixels left.
    if len(hw) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 16 for s in hw):
        raise ValueError(f"LPIPSMetric: size must be an int or (H, W) of ints >= 16, got {size!r}")
    return pairing, (int(hw[0]), int(hw[1])), fit


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_unit_tensor(image: Any, name: str = "image") -> torch.Tensor:
    """Convert one image to a float32 CPU tensor (1, 3, H, W) in [0, 1], or raise ImageError naming `name`."""
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ImageError(f"{name}: PIL image in mode {image.mode!r}; "
                             "expected mode 'RGB' (use image.convert('RGB'))")
        image = np.array(image)  # a copy: PIL buffers are read-only
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ImageError(
                f"{name}: numpy array of dtype {image.dtype}; expected uint8 (H, W, 3) in [0, 255] "
                "(for floats in [0, 1] pass torch.from_numpy(a).permute(2, 0, 1) instead)"
            )
        if image.ndim != 3 or image.shape[2] != 3:
            raise ImageError(f"{name}: numpy array of shape {image.shape}; expected (H, W, 3) RGB")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ImageError(f"{name}: empty image of shape {image.shape}; expected (H, W, 3) with H, W >= 1")
        return torch.from_numpy(np.array(image)).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    if isinstance(image, torch.Tensor):
        if not image.is_floating_point():
            raise ImageError(
                f"{name}: tensor of dtype {image.dtype}; "
                "expected a float tensor in [0, 1] (for uint8 use x.float() / 255)"
            )
        shape = tuple(image.shape)
        if image.ndim == 3:
            image = image.unsqueeze(0)
        if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
            raise ImageError(
                f"{name}: tensor of shape {shape}; expected one image, (3, H, W) or (1, 3, H, W) "
                "(pass a batch as a list of images to distance_batch)"
            )
        if image.shape[2] == 0 or image.shape[3] == 0:
            raise ImageError(f"{name}: empty image of shape {tuple(image.shape)}; expected H, W >= 1")
        image = image.detach().to("cpu", torch.float32)
        if not torch.isfinite(image).all():
            raise ImageError(f"{name}: tensor contains NaN or inf; expected finite values in [0, 1]")
        lo, hi = float(image.min()), float(image.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(
                f"{name}: tensor values span [{lo:.4g}, {hi:.4g}]; expected [0, 1] "
                "(for a [-1, 1] tensor pass (x + 1) / 2)"
            )
        return image
    raise ImageError(f"{name}: got {type(image).__name__}; expected {_EXPECTED}")


class LPIPSMetric:
    """LPIPS-VGG distance over keyed image pairs.

    Args:
        net: backbone; only "vgg" (the paper's) is supported.
        pretrained_backbone: True for torchvision's ImageNet VGG16 from the torch hub cache (the
            paper's LPIPS); False for a seeded random backbone (works offline; properties only).
        device: "cpu", "cuda", ... (default: CUDA when available).
        pairing: "reference" or "paired_backbone" (see the module docstring); recorded in `name`
            and `provenance()`, it does not change the computation.
        size: common size (H, W) or one int for a square, default 256.
        fit: "stretch" (default) or "center_crop" (see the module docstring).
        seed: seed of the random backbone (ignored with a pretrained one).

    `update(key, a, b)` measures one pair and keeps it under `key`; `compute()` returns
    {"mean", "sem", "n"} over the pairs kept (sem is None below two pairs);
    `distance_batch(list_a, list_b)` measures many pairs in batches without keeping them.
    `variant(pairing=..., size=..., fit=...)` gives a metric with other options on the same network.
    """

    def __init__(
        self,
        net: str = "vgg",
        *,
        pretrained_backbone: bool,
        device: str | torch.device | None = None,
        pairing: Pairing = "reference",
        size: int | tuple[int, int] = 256,
        fit: str = "stretch",
        seed: int = 0,
    ) -> None:
        if net != "vgg":
            raise ValueError(f"LPIPSMetric: net={net!r} is not supported; the paper's LPIPS uses net='vgg'")
        if not isinstance(pretrained_backbone, bool):
            raise TypeError(f"LPIPSMetric: pretrained_backbone must be True or False, got {pretrained_backbone!r}")
        self.net = net
        self.pretrained_backbone = pretrained_backbone
        self.pairing, self.size, self.fit = _check_options(pairing, size, fit)
        self.seed = int(seed)
        self.device = torch.device(device) if device is not None else _default_device()
        self._values: dict[str, float] = {}
        self._provenance: dict[str, Any] | None = None

        lpips = _lpips_module()
        self._lpips_version = _package_version("lpips")
        self.backbone_path: Path | None = None
        if pretrained_backbone:
            path = vgg16_weights_path()
            if not path.is_file():
                raise WeightsError(
                    f"LPIPS with pretrained_backbone=True needs torchvision's ImageNet VGG16 weights at {path}, "
                    "and idrift never downloads them. Copy the file vgg16-397923af.pth there (on a machine with "
                    "internet, `python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\"` "
                    "puts it in that machine's torch hub cache), or point TORCH_HOME at a folder holding "
                    "hub/checkpoints/vgg16-397923af.pth, or use pretrained_backbone=False (random backbone)."
                )
            self.backbone_path = path
        self.model = self._build(lpips).to(self.device).eval()

    def _build(self, lpips) -> torch.nn.Module:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's deprecation notice for `pretrained=`
            if self.pretrained_backbone:
                try:
                    return lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=False, verbose=False)
                except Exception as exc:  # a truncated or foreign file in the cache
                    raise WeightsError(
                        f"LPIPS could not load the VGG16 weights {self.backbone_path}: {exc}. "
                        "Replace the file with torchvision's vgg16-397923af.pth."
                    ) from exc
            # Seed only the CPU generator (the model is built on the CPU) and restore it afterwards,
            # so building the metric does not change anyone else's random stream.
            with torch.random.fork_rng(devices=[]):
                torch.random.default_generator.manual_seed(self.seed)
                return lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)

    def variant(
        self, *, pairing: Pairing | None = None, size: int | tuple[int, int] | None = None, fit: str | None = None
    ) -> LPIPSMetric:
        """A metric with other options that shares this one's network (no second VGG in memory).

        Its pairs are kept separately (it starts empty)."""
        other = copy.copy(self)
        other.pairing, other.size, other.fit = _check_options(
            self.pairing if pairing is None else pairing,
            self.size if size is None else size,
            self.fit if fit is None else fit,
        )
        other._values = {}
        other._provenance = None
        return other

    # -- identity of the measurement -------------------------------------------------------------

    @property
    def name(self) -> str:
        """Metric name for the results store: one row per sample and pairing."""
        return f"lpips_{self.pairing}"

    @property
    def backbone(self) -> str:
        return "imagenet" if self.pretrained_backbone else f"random{self.seed}"

    @property
    def version(self) -> str:
        """Everything that changes the value: lpips release, backbone, size, fit, idrift's revision."""
        h, w = self.size
        return f"lpips{self._lpips_version}-vgg-lin0.1-{self.backbone}-{h}x{w}-{self.fit}-r{_IMPL_REVISION}"

    def provenance(self) -> dict[str, Any]:
        """Backbone kind and short sha256 of the weight files (hashed once, on first call)."""
        if self._provenance is None:
            lin_path = Path(_lpips_module().__file__).parent / "weights" / "v0.1" / "vgg.pth"
            self._provenance = {
                "metric": "lpips",
                "version": self.version,
                "lpips_package": self._lpips_version,
                "net": self.net,
                "pairing": self.pairing,
                "size": list(self.size),
                "fit": self.fit,
                "backbone": "pretrained" if self.pretrained_backbone else "random",
                "backbone_seed": None if self.pretrained_backbone else self.seed,
                "backbone_weights": str(self.backbone_path) if self.backbone_path else None,
                "backbone_sha256": file_sha256_short(self.backbone_path) if self.backbone_path else None,
                "linear_sha256": file_sha256_short(lin_path) if lin_path.is_file() else None,
                "device": str(self.device),
            }
        return dict(self._provenance)

    # -- computation -------------------------------------------------------------------------------

    def _prepare(self, image: Any, name: str) -> torch.Tensor:
        x = to_unit_tensor(image, name)
        h, w = x.shape[-2:]
        th, tw = self.size
        if self.fit == "center_crop":
            # Largest centred box with the target aspect ratio.
            ch, cw = (h, round(h * tw / th)) if w * th >= h * tw else (round(w * th / tw), w)
            ch, cw = max(1, min(h, ch)), max(1, min(w, cw))
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[..., top : top + ch, left : left + cw]
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False).clamp_(0.0, 1.0)
        return x

    @torch.inference_mode()
    def _forward(self, a: torch.Tensor, b: torch.Tensor) -> list[float]:
        d = self.model(a.to(self.device), b.to(self.device), normalize=True)  # normalize: [0,1] -> [-1,1]
        return [float(v) for v in d.flatten().cpu()]

    def distance(self, image_a: Any, image_b: Any) -> float:
        """LPIPS distance of one pair (not kept)."""
        return self._forward(self._prepare(image_a, "image_a"), self._prepare(image_b, "image_b"))[0]

    def distance_batch(self, images_a: Sequence[Any], images_b: Sequence[Any], batch_size: int = 8) -> list[float]:
        """Distances of pairs (images_a[i], images_b[i]), `batch_size` pairs per forward pass (not kept)."""
        images_a, images_b = list(images_a), list(images_b)
        if len(images_a) != len(images_b):
            raise ValueError(f"distance_batch: images_a has {len(images_a)} images "
                             f"but images_b has {len(images_b)}; expected pairs")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"distance_batch: batch_size must be an int >= 1, got {batch_size!r}")
        out: list[float] = []
        for start in range(0, len(images_a), batch_size):
            stop = min(start + batch_size, len(images_a))
            a = torch.cat([self._prepare(images_a[i], f"images_a[{i}]") for i in range(start, stop)])
            b = torch.cat([self._prepare(images_b[i], f"images_b[{i}]") for i in range(start, stop)])
            out.extend(self._forward(a, b))
        return out

    # -- accumulation ------------------------------------------------------------------------------

    def _check_key(self, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"LPIPSMetric: key must be a non-empty string (e.g. RunSpec.key), got {key!r}")
        if key in self._values:
            raise ValueError(f"LPIPSMetric: pair {key!r} was already measured; "
                             "keys must be unique (call reset() to start over)")

    def update(self, key: str, image_a: Any, image_b: Any) -> float:
        """Measure one pair, keep it under `key`, return its distance."""
        self._check_key(key)
        d = self.distance(image_a, image_b)
        self._values[key] = d
        return d

    def update_many(self, keys: Iterable[str], images_a: Sequence[Any], images_b: Sequence[Any],
                    batch_size: int = 8) -> list[float]:
        """Batched `update` for many pairs."""
        keys = list(keys)
        if len(keys) != len(set(keys)):
            raise ValueError("LPIPSMetric.update_many: keys must be unique")
        if len(keys) != len(images_a):
            raise ValueError(f"LPIPSMetric.update_many: {len(keys)} keys for {len(images_a)} pairs")
        for key in keys:
            self._check_key(key)
        values = self.distance_batch(images_a, images_b, batch_size=batch_size)
        self._values.update(zip(keys, values))
        return values

    @property
    def values(self) -> dict[str, float]:
        """Per-pair distances by key (a copy)."""
        return dict(self._values)

    def compute(self) -> dict[str, Any]:
        """{"mean", "sem", "n"} over the kept pairs; sem (standard error of the mean) is None for n < 2."""
        n = len(self._values)
        if n == 0:
            raise ValueError("LPIPSMetric.compute: no pairs measured yet; call update(key, image_a, image_b) first")
        v = np.fromiter(self._values.values(), dtype=np.float64, count=n)
        sem = float(v.std(ddof=1) / math.sqrt(n)) if n >= 2 else None
        return {"mean": float(v.mean()), "sem": sem, "n": n}

    def reset(self) -> None:
        self._values = {}
