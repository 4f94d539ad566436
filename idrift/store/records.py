"""One stored sample as read back (`SampleRecord`), the pixel hash that identifies its image, and the atomic
file writes that put images in place."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from idrift.config import RunSpec
from idrift.store.schema import StoreError


def image_sha256(image: Image.Image) -> str:
    """Hash of the pixels (mode, size, bytes), not of the PNG file, whose bytes vary with the encoder."""
    digest = hashlib.sha256(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class SampleRecord:
    """One stored sample with its metrics ({metric: {"version", "values", "run_id", "created"}})."""

    spec_key: str
    spec: dict
    status: str
    error: str | None
    image_path: Path | None  # None when there is no image (failed before an image existed)
    image_sha256: str | None
    stage_seconds: dict
    provenance: dict
    run_id: str
    created: str
    metrics: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def run_spec(self) -> RunSpec:
        return RunSpec(**self.spec)

    def load_image(self) -> Image.Image:
        """The sample's image, checked against its row's pixel hash: a truncated, replaced or unreadable
        file is a StoreError naming it (a resume regenerates it: ResultsStore.usable)."""
        if self.image_path is None:
            raise StoreError(f"sample {self.spec_key} has no image (status {self.status}: {self.error})")
        problem = image_problem(self.image_path, self.image_sha256)
        if isinstance(problem, str):
            raise StoreError(f"image {self.image_path} of sample {self.spec_key}: {problem}; rerun the run's command "
                             "(it regenerates the sample) or restore the file")
        return problem


def image_problem(path: Path, sha: str | None) -> Image.Image | str:
    """The image at `path` when it decodes and has pixel hash `sha`; otherwise why not (a str)."""
    try:
        with Image.open(path) as im:
            image = im.copy()
            image.load()
    except FileNotFoundError:
        return "the file is missing"
    except (OSError, SyntaxError, ValueError) as exc:  # PIL: truncated, not an image, bad chunk
        return f"cannot be decoded ({exc})"
    if sha is not None and image_sha256(image) != sha:
        return f"its pixels do not match the stored hash {sha} (the file was changed or replaced)"
    return image.convert("RGB") if image.mode != "RGB" else image



def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path` (atomic on POSIX)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_copy(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.stem}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
