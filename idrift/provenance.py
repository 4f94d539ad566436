"""Small provenance helpers shared by the models, the face backends and the metrics."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path


def file_sha256_short(path: str | Path) -> str:
    """sha256 of a whole (model) file, first 16 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def dist_version(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def random_weights_fingerprint(profile: str, name: str, config: dict, seed: int) -> str:
    """Fingerprint of a model built in code with random weights: its builder, config and seed."""
    blob = json.dumps({"name": name, "config": config, "seed": seed, "builder": f"idrift.models.{profile}/1"},
                      sort_keys=True, default=str)
    return f"{profile}:" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def onnxruntime_provenance() -> dict | None:
    """The onnxruntime module actually imported (its __version__, which the wheels' metadata may not
    match) and whether the CPU and GPU wheels are both installed; None without onnxruntime."""
    from idrift.faces.onnx_providers import imported_onnxruntime, installed_distributions

    distributions = installed_distributions()
    if not any(distributions.values()):
        return None
    imported = imported_onnxruntime()
    return {"imported_version": imported["version"], "distributions": distributions,
            "double_install": all(distributions.values())}
