"""Provenance: where every number idrift writes came from. Small helpers shared by the models, the face
backends and the metrics, and `run_provenance`, the one function that assembles a run's provenance."""

from __future__ import annotations

import hashlib
import json
import platform
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


# The distributions whose versions every run records (those installed).
PROVENANCE_PACKAGES = ("torch", "diffusers", "transformers", "insightface", "onnxruntime", "onnxruntime-gpu",
                       "lpips", "dlib-bin", "numpy", "scipy", "idrift")


def package_versions() -> dict[str, str]:
    return {name: version for name in PROVENANCE_PACKAGES if (version := dist_version(name))}


def gpu_name(device: str | None = None) -> str | None:
    """The name of the GPU that `device` ("cuda", "cuda:1"; None: the current GPU) is; None off CUDA."""
    import torch

    if not torch.cuda.is_available() or (device is not None and not str(device).startswith("cuda")):
        return None
    return torch.cuda.get_device_name(torch.device(device) if device else None)


def environment_provenance(device: str) -> dict:
    """What a run's numbers depend on besides its models: the device and its GPU, the package versions,
    Python, the machine and the onnxruntime module imported (beside the wheels' metadata in packages)."""
    env = {"gpu": gpu_name(device), "device": device, "packages": package_versions(),
           "python": platform.python_version(), "machine": platform.machine()}
    onnxruntime = onnxruntime_provenance()
    if onnxruntime is not None:
        env["onnxruntime"] = onnxruntime
    return env


def run_provenance(*, profile: str, tier: str, aggregation: str, environment: dict, weights: dict,
                   acceleration: dict, noise: dict | None = None, metrics: dict | None = None,
                   face_backend: dict | None = None, lpips: dict | None = None, **optional) -> dict:
    """A run's provenance, from its parts (no I/O): the profile, tier and aggregation, the environment
    (environment_provenance), the weights' fingerprints by component, how the pipeline computed
    (acceleration), the noise's generator, the measuring code (metrics, face backend, LPIPS) and the
    optional parts that are present (loras, reference_faces, memory, scored); None parts are left out."""
    prov = {"profile": profile, "tier": tier, **environment, "aggregation": aggregation, "weights": weights}
    parts = {"face_backend": face_backend, "lpips": lpips, "metrics": metrics, "acceleration": acceleration,
             "noise": noise, **optional}
    prov.update({name: value for name, value in parts.items() if value is not None})
    return prov
