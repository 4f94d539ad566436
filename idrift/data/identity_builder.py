"""Building an identity set from a folder of photos, with the paper's filters.

`build_identity_set` applies the paper's filters to a folder of photos: exactly one confident face
(detector score above the backend's own confident-face score: 0.7 on SCRFD's scale, the paper's; 1.0 on
dlib's HOG margin, idrift/faces/scales.py; weaker detections, like the mission patch on the astronaut
photograph, are neither the subject nor a second person), face width > 80 px, estimated age >= 18.
A backend without an age model (dlib) cannot apply the age filter; the manifest then records it as not
applied rather than passing it.
Every rejected file goes to a JSON-lines log with its reason; unreadable files are rejected, not fatal.
The result is a manifest of idrift.data.identities, written there and read back checked.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from idrift.data.identities import (
    IMAGE_SUFFIXES,
    IdentityEntry,
    IdentityManifest,
    atomic_write_bytes,
    load_manifest,
    sha256_file,
    write_manifest,
)
from idrift.errors import FaceError, IdriftError, ImageError, NonFiniteError
from idrift.faces.image_io import load_image
from idrift.faces.select import single_face


def build_identity_set(
    src_dir: str | os.PathLike,
    out_manifest: str | os.PathLike,
    backend,
    n: int | None = None,
    seed: int = 0,
    min_score: float | None = None,
    min_face_width: float = 80,
    min_age: float = 18,
) -> IdentityManifest:
    """Filter the photos under `src_dir` (recursively) as the paper does, choose `n` of them
    deterministically, and write the manifest plus `<manifest stem>.rejected.jsonl` beside it.

    Filters: exactly one face with score > `min_score` (None: the backend's confident-face score,
    idrift.faces.scales), face width >
    `min_face_width` px, age >= `min_age` (only where the backend estimates age; otherwise recorded as
    not applied). The choice: accepted images sorted by sha256, then `n` drawn with numpy's generator
    seeded by `seed` (all of them when `n` is None), kept in sha256 order.
    """
    src_dir = Path(src_dir)
    out_manifest = Path(out_manifest)
    if not src_dir.is_dir():
        raise IdriftError(f"identity source folder {src_dir} does not exist or is not a folder")
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1 (or None for all), got {n}")
    from idrift.faces.scales import scale_of

    scale = scale_of(backend)
    score_source = scale.confident_face_source if min_score is None else "given"
    min_score = scale.confident_face if min_score is None else float(min_score)
    has_age = bool(getattr(backend, "has_age", False))
    accepted, rejected, n_files = _screen_folder(
        src_dir, out_manifest, backend, min_score, min_face_width, min_age if has_age else None
    )

    log_path = out_manifest.with_name(out_manifest.stem + ".rejected.jsonl")
    atomic_write_bytes(log_path, "".join(json.dumps(r) + "\n" for r in rejected).encode("utf-8"))
    if not accepted:
        raise IdriftError(f"no photo in {src_dir} passed the filters ({len(rejected)} rejected; reasons in {log_path})")
    n_passed = len(accepted)
    chosen = _choose(accepted, n, seed, src_dir=src_dir, n_rejected=len(rejected), log_path=log_path)

    entries = _entries(chosen, src_dir, out_manifest)
    created_with = _created_with(
        src_dir, backend, min_score=min_score, score_source=score_source, min_face_width=min_face_width,
        min_age=min_age, has_age=has_age, n=n, seed=seed,
        counts={"files": n_files, "passed_filters": n_passed, "chosen": len(entries), "rejected": len(rejected)},
        rejection_log=log_path.name,
    )
    write_manifest(out_manifest, entries, created_with=created_with)
    return load_manifest(out_manifest)


def _screen_folder(src_dir: Path, out_manifest: Path, backend, min_score, min_face_width, min_age):
    """Every file under `src_dir`, in sorted order, through the filters: (accepted, rejected, files seen).
    `accepted` holds (sha256, file, face); `rejected` one {"file", "reason"} record per file turned away.
    `min_age` None: the age filter is not applied."""
    rejected: list[dict] = []
    accepted: list[tuple[str, Path, object]] = []  # (sha256, file, face)
    seen_sha: dict[str, str] = {}
    n_files = 0
    for file in sorted(p for p in src_dir.rglob("*") if p.is_file()):
        rel = file.relative_to(src_dir).as_posix()
        if file.resolve() == out_manifest.resolve() or file.name.endswith(".rejected.jsonl"):
            continue  # our own outputs, when the manifest is written inside the source folder
        n_files += 1
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            rejected.append(
                {
                    "file": rel,
                    "reason": (
                        f"not an image file (suffix {file.suffix or 'none'}; "
                        f"accepted: {', '.join(IMAGE_SUFFIXES)})"
                    ),
                }
            )
            continue
        sha = sha256_file(file)
        if sha in seen_sha:
            rejected.append({"file": rel, "reason": f"duplicate of {seen_sha[sha]} (same sha256)"})
            continue
        seen_sha[sha] = rel
        reason, face = _check_photo(file, rel, backend, min_score, min_face_width, min_age)
        if reason:
            rejected.append({"file": rel, "reason": reason})
        else:
            accepted.append((sha, file, face))
    return accepted, rejected, n_files


def _check_photo(file: Path, rel: str, backend, min_score, min_face_width, min_age):
    """(reason, face): reason is None when the photo passes every filter."""
    try:
        image = load_image(file, name=rel)
    except ImageError as exc:
        return f"unreadable: {exc}", None
    try:
        faces = backend.detect(image, with_age=min_age is not None)
    except NonFiniteError as exc:  # one broken embedding rejects the photo, not the whole build
        return f"embedding failed: {exc}", None
    confident = [f for f in faces if f.score > min_score]
    if faces and not confident:  # one weak face (or only weak ones): say by how much it missed
        best = max(faces, key=lambda f: f.score)
        return f"detector score {best.score:.3f} is not > {min_score:g} ({backend.name}'s scale)", None
    try:
        face = single_face(confident, source=rel)  # the paper's single-face filter (rejection log)
    except FaceError as exc:
        return str(exc), None
    if not face.width > min_face_width:
        return f"face width {face.width:.0f} px is not > {min_face_width:g} px", None
    if min_age is not None:
        if face.age is None:
            return "the backend gave no age estimate", None
        if face.age < min_age:
            return f"estimated age {face.age:.0f} is under {min_age:g}", None
    return None, face


def _choose(accepted: list, n: int | None, seed: int, *, src_dir: Path, n_rejected: int, log_path: Path) -> list:
    """The accepted photos sorted by sha256, then `n` of them drawn with numpy's generator seeded by `seed`
    (all of them when `n` is None), kept in sha256 order."""
    accepted = sorted(accepted, key=lambda item: item[0])
    if n is None:
        return accepted
    if n > len(accepted):
        raise IdriftError(
            f"asked for {n} identities but only {len(accepted)} photos in {src_dir} passed the filters "
            f"(reasons for the {n_rejected} rejected in {log_path}); use --n {len(accepted)} or add photos"
        )
    chosen = np.sort(np.random.default_rng(seed).choice(len(accepted), size=n, replace=False))
    return [accepted[i] for i in chosen]


def _entries(chosen, src_dir: Path, out_manifest: Path) -> list[IdentityEntry]:
    """The manifest entries of the chosen photos: ids from their paths, image paths relative to the manifest."""
    entries, ids = [], set()
    for sha, file, face in chosen:
        identity_id = _identity_id(file.relative_to(src_dir), ids)
        ids.add(identity_id)
        entries.append(
            IdentityEntry(
                identity_id=identity_id,
                image_path=Path(os.path.relpath(file.resolve(), out_manifest.resolve().parent)).as_posix(),
                sha256=sha,
                face_box=tuple(float(v) for v in face.bbox),
                det_score=float(face.score),
                age=None if face.age is None else float(face.age),
            )
        )
    return entries


def _identity_id(rel: Path, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", rel.with_suffix("").as_posix().replace("/", "-")).strip("-") or "identity"
    candidate, k = base, 1
    while candidate in taken:
        k += 1
        candidate = f"{base}-{k}"
    return candidate


def _created_with(
    src_dir: Path, backend, *, min_score, score_source, min_face_width, min_age, has_age, n, seed, counts, rejection_log
) -> dict:
    """The manifest's record of how it was built: tool, source, backend provenance, filters, selection,
    counts and the rejection log's name."""
    from idrift import __version__

    return {
        "tool": "idrift.data.identity_builder.build_identity_set",
        "idrift": __version__,
        "source_dir": str(src_dir),
        "backend": backend.provenance(),
        "filters": {
            "faces": "exactly one with score > min_score (weaker detections are not counted)",
            "min_score": {"value": min_score, "rule": "score > value", "applied": True, "scale": backend.name,
                          "source": score_source},
            "min_face_width": {"value": min_face_width, "rule": "width > value (px)", "applied": True},
            "min_age": (
                {"value": min_age, "rule": "age >= value", "applied": True}
                if has_age
                else {
                    "value": min_age,
                    "rule": "age >= value",
                    "applied": False,
                    "why": f"backend {backend.name} has no age model",
                }
            ),
        },
        "selection": {
            "n": n,
            "seed": seed,
            "rule": "sort by sha256, numpy default_rng(seed).choice without replacement",
        },
        "counts": counts,
        "rejection_log": rejection_log,
    }
