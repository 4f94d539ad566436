"""ArcFace IR-SE50: the face encoder whose 512-d embedding conditions InfuseNet.

InfiniteYou embeds the reference face with this network (the weights file
`recognition_arcface_ir_se50.pth`) on the 112x112 `norm_crop` of the largest face that antelopev2
finds, fed as BGR scaled to [-1, 1]. Parameter names match that file, so it loads with strict=True.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from idrift.errors import WeightsError

# (in_channels, depth, units) per stage for the 50-layer variant; the first unit of a stage has stride 2.
_STAGES_50 = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class _BottleneckIRSE(nn.Module):
    def __init__(self, in_channels: int, depth: int, stride: int):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            _SqueezeExcite(depth, 16),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSE50(nn.Module):
    """112x112 BGR face crop in [-1, 1] -> L2-normalised 512-d embedding."""

    def __init__(self, drop_ratio: float = 0.6):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        for in_channels, depth, n in _STAGES_50:
            units.append(_BottleneckIRSE(in_channels, depth, 2))
            units.extend(_BottleneckIRSE(depth, depth, 1) for _ in range(n - 1))
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512), nn.Dropout(drop_ratio), nn.Flatten(), nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.output_layer(self.body(self.input_layer(x)))
        return nn.functional.normalize(x, dim=1)


def load_ir_se50(path: str | Path, device: torch.device | str = "cpu") -> IRSE50:
    """Load `recognition_arcface_ir_se50.pth` (a plain state dict) onto `device`; never downloads."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"ArcFace IR-SE50 weights not found at {path}. Set --idrift-arcface-ir-se50 or IDRIFT_ARCFACE_IR_SE50 "
            "to the file `recognition_arcface_ir_se50.pth` (facexlib's release)."
        )
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # corrupt or not a torch file
        raise WeightsError(f"cannot read ArcFace IR-SE50 weights {path}: {exc}. Re-copy the file.") from exc
    model = IRSE50()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path} is not an IR-SE50 state dict ({str(exc).splitlines()[0]})") from exc
    return model.to(device).eval()


def face_crop_to_tensor(crop_rgb: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """112x112x3 RGB uint8 norm_crop -> (1, 3, 112, 112) BGR in [-1, 1], as the IR-SE50 weights expect."""
    if crop_rgb.shape != (112, 112, 3) or crop_rgb.dtype != np.uint8:
        raise ValueError(f"expected a 112x112x3 uint8 face crop, got {crop_rgb.shape} {crop_rgb.dtype}")
    # The uint8 pixels to the device first and the arithmetic there (the same float32 operations): on a GPU
    # host, converting on the CPU stalled the identity stage in about half of the images.
    pixels = torch.from_numpy(np.ascontiguousarray(crop_rgb)).to(device)
    x = pixels.flip(-1).permute(2, 0, 1)[None].float() / 255.0  # RGB -> BGR
    return (2 * x - 1).to(dtype)
