"""Identity similarity: cosine similarity between a reference face and the face of each generated image.

The paper's ID metric (ArcFace cosine similarity) as a torchmetrics-style accumulator. Rules:
- a reference image is used by its largest face, found as InfiniteYou finds it (`idrift.faces.select.find_reference`);
- a generated image is measured on its largest face (`largest_face`); several faces are allowed;
- a generated image with NO face is a failed detection. It is recorded, never dropped: with
  `aggregation="zero"` (the default) it counts as similarity 0 in `mean`, because a generator that
  loses the face has failed to preserve the identity; `aggregation="detected"` averages over detected
  faces only. Both means and the detection rate are always reported, so neither choice hides the other.

Example:
    >>> from skimage import data
    >>> from idrift.faces.dlib_backend import DlibBackend
    >>> metric = IdentitySimilarity(DlibBackend())
    >>> _ = metric.reference("astronaut", data.astronaut()[:320], source="astronaut (head)")
    >>> record = metric.update("flip", "astronaut", data.astronaut()[:, ::-1])
    >>> record["detected"], record["id_sim"] > 0.95
    (True, True)
    >>> _ = metric.update("coffee", "astronaut", data.coffee())
    >>> result = metric.compute()
    >>> result["n"], result["n_detected"], result["detection_rate"]
    (2, 1, 0.5)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np

from idrift.errors import NonFiniteError
from idrift.faces.base import DetectedFace, FaceBackend
from idrift.faces.image_io import as_rgb_uint8, load_image
from idrift.faces.select import find_reference, largest_face

AGGREGATIONS = ("zero", "detected")


def cosine_similarity(a, b) -> float:
    """Cosine similarity of two 1-D vectors, in [-1, 1] (clipped against rounding), symmetric.

    Raises ValueError for mismatched shapes or a zero vector, NonFiniteError for NaN/inf entries.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"cosine_similarity needs two 1-D vectors of the same length, got shapes {a.shape} and {b.shape}"
        )
    for label, v in (("first", a), ("second", b)):
        if not np.all(np.isfinite(v)):
            raise NonFiniteError(
                f"cosine_similarity: the {label} vector has NaN or inf entries; the embedding model failed"
            )
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    if norm_a == 0 or norm_b == 0:
        raise ValueError("cosine_similarity: a zero vector has no direction; check the embedding")
    # Symmetric by construction: the same products in the same order either way round.
    return float(np.clip(np.dot(a / norm_a, b / norm_b), -1.0, 1.0))


def _as_image(image, name: str) -> np.ndarray:
    if isinstance(image, (str, os.PathLike, bytes, bytearray)):
        return load_image(image, name=None if isinstance(image, (str, os.PathLike)) else name)
    return as_rgb_uint8(image, name=name)


class IdentitySimilarity:
    """Accumulates per-sample identity similarity against cached reference embeddings.

    Args:
        backend: a `FaceBackend` (ArcFace for the paper's numbers; dlib offline).
        aggregation: "zero" (failed detections count as 0 in `mean`) or "detected" (mean over detected only).
    """

    def __init__(self, backend: FaceBackend, aggregation: str = "zero"):
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        self.backend = backend
        self.aggregation = aggregation
        self._references: dict[str, DetectedFace] = {}
        self.reference_face_counts: dict[str, int] = {}  # faces found in each reference (the largest is used)
        self.records: list[dict] = []

    def reference(self, key: str, image, source: str | None = None) -> DetectedFace:
        """Detect a reference image's faces (path, bytes, PIL or RGB array) and cache its largest under `key`;
        `reference_face_counts[key]` says how many it showed.

        `source` names the image in errors (default: its path, else the key).
        """
        if source is None:
            source = str(image) if isinstance(image, (str, os.PathLike)) else f"reference {key!r}"
        found = find_reference(self.backend, _as_image(image, source), source=source)
        self._references[key] = found.face
        self.reference_face_counts[key] = found.n_faces
        return found.face

    def update(self, sample_key: str, reference_key: str, generated_image) -> dict:
        """Measure one generated image against a cached reference; returns (and keeps) its record:
        {sample, reference, id_sim (float, or None when no face), detected, n_faces, bbox, det_score}."""
        if reference_key not in self._references:
            known = ", ".join(sorted(self._references)) or "none"
            raise KeyError(f"no reference {reference_key!r} (known: {known}); call reference() first")
        if any(r["sample"] == sample_key for r in self.records):
            raise ValueError(f"sample {sample_key!r} was already measured; sample keys must be unique")
        faces = self.backend.detect(_as_image(generated_image, f"generated sample {sample_key!r}"))
        face = largest_face(faces)
        record = {
            "sample": sample_key,
            "reference": reference_key,
            "id_sim": None
            if face is None
            else cosine_similarity(self._references[reference_key].embedding, face.embedding),
            "detected": face is not None,
            "n_faces": len(faces),
            "bbox": None if face is None else [float(v) for v in face.bbox],
            "det_score": None if face is None else float(face.score),
        }
        self.records.append(record)
        return record

    def compute(self) -> dict:
        """Aggregate: mean (per `aggregation`), mean_detected, detection_rate, n, n_detected, sem
        (standard error of `mean`; None for fewer than two values), aggregation."""
        n = len(self.records)
        if n == 0:
            raise ValueError("IdentitySimilarity.compute() called before any update()")
        detected = [r["id_sim"] for r in self.records if r["detected"]]
        if self.aggregation == "zero":
            values = [r["id_sim"] if r["detected"] else 0.0 for r in self.records]
        else:
            values = detected
        return {
            "mean": _mean(values),
            "mean_detected": _mean(detected),
            "detection_rate": len(detected) / n,
            "n": n,
            "n_detected": len(detected),
            "sem": _sem(values),
            "aggregation": self.aggregation,
        }

    def reset(self) -> None:
        """Forget the measured samples (the cached references stay)."""
        self.records = []


def identity_shift(identity: DetectedFace, reference: DetectedFace | None, candidate: DetectedFace | None) -> dict:
    """How far another way of computing the same image (a fast path, another attention kernel) moved its identity.

    `identity` is the face of the identity photo; `reference` and `candidate` are the largest faces of the
    image the reference path made and of the one the other path made from the same spec (None: no face).
    Returns ``id_sim_reference`` and ``id_sim_candidate`` (each image against the photo), ``id_sim_delta``
    (candidate minus reference: what the paper's ID_sim would gain or lose) and ``id_sim_between`` (the two
    generated faces against each other: 1 when the identity did not move at all). A figure that needs a
    missing face is None, and ``reason`` says which image has none.
    """
    out = {"id_sim_reference": (None if reference is None
                                else cosine_similarity(identity.embedding, reference.embedding)),
           "id_sim_candidate": (None if candidate is None
                                else cosine_similarity(identity.embedding, candidate.embedding)),
           "id_sim_delta": None, "id_sim_between": None}
    if reference is not None and candidate is not None:
        out["id_sim_delta"] = out["id_sim_candidate"] - out["id_sim_reference"]
        out["id_sim_between"] = cosine_similarity(reference.embedding, candidate.embedding)
    else:
        missing = [name for name, face in (("the reference path's image", reference),
                                           ("the candidate image", candidate))
                   if face is None]
        out["reason"] = f"no face in {' or '.join(missing)}"
    return out


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _sem(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def backend_agreement(scores_a: Mapping[str, float | None], scores_b: Mapping[str, float | None]) -> dict:
    """Spearman rank correlation between two backends' per-sample scores, over the sample keys both
    scored (None = failed detection, left out). Returns {rho, p, n, n_only_a, n_only_b};
    rho and p are None when fewer than 3 samples are shared or one side is constant."""
    from scipy.stats import spearmanr

    usable_a = {k: v for k, v in scores_a.items() if v is not None}
    usable_b = {k: v for k, v in scores_b.items() if v is not None}
    common = sorted(set(usable_a) & set(usable_b))
    result = {
        "rho": None,
        "p": None,
        "n": len(common),
        "n_only_a": len(set(usable_a) - set(usable_b)),
        "n_only_b": len(set(usable_b) - set(usable_a)),
    }
    a = [float(usable_a[k]) for k in common]
    b = [float(usable_b[k]) for k in common]
    if len(common) >= 3 and len(set(a)) > 1 and len(set(b)) > 1:
        rho, p = spearmanr(a, b)
        result["rho"], result["p"] = float(rho), float(p)
    return result
