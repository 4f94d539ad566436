"""The heavy things a benchmark session uses, each built on first use: the device, the profile's models
(one bundle), the weights' locations, the face backend, the reference identities, the metrics and where
the store and caches live. Collecting the benchmarks builds none of them."""

from __future__ import annotations

import os
import shutil
from functools import cached_property
from pathlib import Path

import numpy as np

from idrift.config import PROFILE_DEFAULTS
from idrift.errors import IdriftError
from idrift.runner import Identity


def kps_from_box(box) -> np.ndarray:
    """Five keypoints at typical positions inside a face box. Used only where no detector runs
    (synthetic references), since the keypoints then only place the control drawing."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    rel = np.array([[0.32, 0.40], [0.68, 0.40], [0.50, 0.58], [0.36, 0.76], [0.64, 0.76]], dtype=np.float32)
    return rel * np.array([w, h], dtype=np.float32) + np.array([x1, y1], dtype=np.float32)


class SessionResources:
    """Lazy resources of one session, from its options (idrift.session.options.SessionOptions)."""

    def __init__(self, options):
        self.options = options
        self.profile = options.profile

    # ---- places -----------------------------------------------------------------------------
    @cached_property
    def cache_dir(self) -> Path:
        """Caches (the built-in identity set, a private torch hub dir): the same folder from any working
        directory, so that a run resumes from anywhere (idrift.data.identities.user_cache_dir)."""
        from idrift.data.identities import user_cache_dir

        path = Path(self.options.cache_dir) if self.options.cache_dir else user_cache_dir()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IdriftError(f"cache folder {path} cannot be created ({exc.strerror or exc}); set IDRIFT_CACHE "
                              "to a folder you can write to") from None
        return path

    @cached_property
    def store_path(self) -> Path:
        """--idrift-store, else <IDRIFT_CACHE or ./.idrift>/store-<profile> (the documented default)."""
        if self.options.store:
            return Path(self.options.store)
        return Path(os.environ.get("IDRIFT_CACHE") or Path.cwd() / ".idrift") / f"store-{self.profile}"

    def wipe_store(self) -> None:
        """--idrift-fresh: delete the store folder, once, without opening it (the pytest-xdist controller
        calls this before its workers start; opening would build the models for the run's provenance)."""
        if self.store_path.exists():
            shutil.rmtree(self.store_path)
        self.options.fresh = False  # done: `store` must not wipe again

    # ---- models and data ----------------------------------------------------------------------
    @cached_property
    def device(self) -> str:
        import torch

        wanted = self.options.device or PROFILE_DEFAULTS[self.profile].device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        if wanted == "cuda":
            from idrift.distributed import worker_cuda_device

            wanted = worker_cuda_device() or wanted  # an xdist worker's own GPU, by index
        return wanted

    @cached_property
    def bundle(self):
        if self.profile == "tiny":
            from idrift.models.tiny import build_tiny_bundle

            bundle = build_tiny_bundle(device=self.device)
        elif self.profile == "synthetic":
            from idrift.models.synthetic import build_synthetic_bundle

            bundle = build_synthetic_bundle(device=self.device)
        else:
            from idrift.models.real import load_real_bundle

            bundle = load_real_bundle(self.weight_paths, device=self.device)
        if self.options.loras:
            from idrift.models.lora import apply_loras

            apply_loras(bundle, self.options.loras)  # as InfiniteYou's load_loras: peft adapters on each backbone
        return bundle

    def check_real_weights(self) -> None:
        """Every missing or malformed weight, in one error, before any work starts."""
        from idrift.errors import WeightsError
        from idrift.models.verify import verify_statuses
        from idrift.models.weights_check import check_weights, weights_problem_report

        report = weights_problem_report(verify_statuses(check_weights(self.weight_paths)))
        if report:
            raise WeightsError(report)

    @cached_property
    def weight_paths(self):
        from idrift.models.paths import resolve_weight_paths

        return resolve_weight_paths(self.options.weights)

    @cached_property
    def face_backend(self):
        """dlib (real weights from the package index) on tiny; antelopev2 on real; none on synthetic."""
        from idrift.faces import make_backend

        if self.profile == "tiny":
            return make_backend("dlib")
        if self.profile == "real":
            return make_backend("arcface", model_root=str(self.weight_paths.location("antelopev2")))
        return None

    @cached_property
    def identities(self) -> list[Identity]:
        from idrift.faces.image_io import load_image
        from idrift.faces.select import find_reference

        if self.profile == "synthetic":
            # Random references of the real size: identity is never judged on random weights.
            rng = np.random.default_rng(0)
            return [Identity(f"synthetic{i}", rng.integers(0, 256, (512, 512, 3), dtype=np.uint8),
                             kps_from_box((128, 96, 384, 416))) for i in range(28)]
        from idrift.data.identities import builtin_identity_set, load_manifest

        manifest = load_manifest(self.options.identities or builtin_identity_set(self.cache_dir))
        out = []
        for entry in manifest.entries:
            path = manifest.image_file(entry)
            image = load_image(path)
            found = find_reference(self.face_backend, image, source=str(path))
            out.append(Identity(entry.identity_id, image, np.asarray(found.face.kps, dtype=np.float32), found.n_faces))
        return out

    @cached_property
    def identity_metric(self):
        if self.face_backend is None:
            return None
        from idrift.metrics.identity import IdentitySimilarity

        return IdentitySimilarity(self.face_backend, aggregation=self.options.aggregation)

    @cached_property
    def agreement_metric(self):
        """dlib's recogniser beside antelopev2 on `real`: the run reports how well the two agree."""
        if self.profile != "real":
            return None
        from idrift.faces import make_backend
        from idrift.metrics.identity import IdentitySimilarity

        try:
            return IdentitySimilarity(make_backend("dlib"), aggregation=self.options.aggregation)
        except ImportError:  # dlib is an install dependency; a trimmed environment just skips this
            return None

    @cached_property
    def lpips_metric(self):
        if self.profile == "synthetic":
            return None
        from idrift.metrics.lpips import LPIPSMetric

        # Offline (tiny) the VGG backbone can only be random: its numbers are golden values, not LPIPS.
        if self.profile != "real":
            return LPIPSMetric(pretrained_backbone=False, device=self.device, size=64)  # tiny images are 64 px
        # torchvision reads VGG16 from <hub dir>/checkpoints/: point a private hub dir at the file that
        # --idrift-vgg16 names, for the build only.
        import torch

        from idrift.models.paths import VGG16_FILE

        hub = self.cache_dir / "torch-hub"
        (hub / "checkpoints").mkdir(parents=True, exist_ok=True)
        link = hub / "checkpoints" / VGG16_FILE
        link.unlink(missing_ok=True)
        given = Path(self.weight_paths.location("vgg16"))  # the file, or a folder holding it
        link.symlink_to((given / VGG16_FILE if given.is_dir() else given).resolve())
        previous = torch.hub.get_dir()
        torch.hub.set_dir(str(hub))
        try:
            return LPIPSMetric(pretrained_backbone=True, device=self.device, size=256)
        finally:
            torch.hub.set_dir(previous)

    def registered_metric(self, name: str):
        """The registered metric `name` (idrift.metrics.REGISTRY), built on first use; None where this
        profile cannot measure it."""
        built = self.__dict__.setdefault("_registered_metrics", {})
        if name not in built:
            from idrift.metrics import MetricSetup, build_metric

            built[name] = build_metric(name, MetricSetup(profile=self.profile, device=self.device,
                                                         cache_dir=self.cache_dir, weights=self.weight_paths))
        return built[name]

    def metrics_provenance(self) -> dict:
        """Each registered metric the claims use, by name: its provenance (model fingerprints, variant)."""
        from idrift.claims import CLAIMS
        from idrift.metrics import REGISTRY

        used = [name for name in REGISTRY if any(name in claim.metrics for claim in CLAIMS)]
        return {name: metric.provenance() for name in used if (metric := self.registered_metric(name)) is not None}

