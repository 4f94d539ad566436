"""Scored images into the results store, measured by the runner like generated samples.

Each good manifest row becomes a RunSpec with `method` set (idrift.config.RunSpec: what idrift does not
know of another method's image is "" or 0) and is stored with the store's public API
(`put_generation`, the image copied into the store). The runner then measures it: `Runner.ensure`
finds every sample usable, generates nothing, and measures what lacks a current metric version, so a
rerun measures only what is new and a changed image (other pixels under the same row) is re-measured.

Problems found here join the manifest's: an image that is missing or cannot be decoded, an identity with
no reference photograph (unknown), a reference that is missing, unreadable or shows no face.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from idrift.config import RunSpec
from idrift.errors import FaceError, IdriftError, ImageError
from idrift.scoring.manifest import Manifest, Problem, Row


@dataclass
class Ingested:
    specs: list[RunSpec] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)  # the row of each spec
    problems: list[Problem] = field(default_factory=list)
    added: int = 0  # samples stored new or with changed pixels (the others were scored before)


def spec_of(row: Row, profile: str) -> RunSpec:
    """The sample a row stands for; `profile` is the measuring profile (tiny: dlib and random LPIPS)."""
    return RunSpec(backbone="", steps=row.steps or 0, guidance=0.0, alpha=0.0, prompt_id=row.prompt_id,
                   prompt=row.prompt, identity=row.identity, seed=row.seed, width=0, height=0, dtype="",
                   profile=profile, method=row.method)


def reference_paths(manifest: Manifest, identity_manifest: str | None) -> dict[str, Path]:
    """identity -> reference photograph: the manifest's own, else the identity-set manifest's."""
    out: dict[str, Path] = {}
    if identity_manifest:
        from idrift.data.identities import load_manifest

        identities = load_manifest(identity_manifest)
        out = {e.identity_id: identities.image_file(e) for e in identities.entries}
    out.update({ident: path for ident, (path, _) in manifest.references.items()})
    return out


def load_identities(manifest: Manifest, face_backend, identity_manifest: str | None = None):
    """(the runner's Identity per usable identity, {identity: why it is not usable}). A reference is read
    and its largest face found as InfiniteYou finds it (idrift.faces.select.find_reference)."""
    from idrift.faces.image_io import load_image
    from idrift.faces.select import find_reference
    from idrift.runner import Identity

    paths = reference_paths(manifest, identity_manifest)
    identities, bad = [], {}
    for ident in dict.fromkeys(row.identity for row in manifest.rows):
        path = paths.get(ident)
        if path is None:
            where = " or in --identities" if identity_manifest else " (or pass --identities MANIFEST)"
            bad[ident] = f"unknown identity {ident!r}: no row gives its reference photograph{where}"
            continue
        try:
            image = load_image(path, name=f"reference {path} of identity {ident!r}")
            found = find_reference(face_backend, image, source=f"reference {path} of identity {ident!r}")
        except (ImageError, FaceError) as exc:
            bad[ident] = str(exc)
            continue
        identities.append(Identity(ident, image, np.asarray(found.face.kps, dtype=np.float32), found.n_faces))
    return identities, bad


def _read(row: Row):
    """The row's image as a PIL RGB image, or ImageError naming it."""
    from PIL import Image

    from idrift.faces.image_io import load_image

    return Image.fromarray(load_image(row.image))


def ingest(manifest: Manifest, store, profile: str, bad_identities: dict[str, str], provenance: dict) -> Ingested:
    """Store every usable row's image as a sample (a no-op for pixels already stored); collect the problems."""
    from idrift.store import image_sha256

    out = Ingested(problems=list(manifest.problems))
    for row in manifest.rows:
        if row.identity in bad_identities:
            out.problems.append(Problem(row.row, bad_identities[row.identity]))
            continue
        spec = spec_of(row, profile)
        try:
            image = _read(row)
        except ImageError as exc:
            out.problems.append(Problem(row.row, str(exc)))
            continue
        stored = store.get(spec)
        if stored is None or not store.usable(spec) or stored.image_sha256 != image_sha256(image):
            # new, its stored copy damaged, or other pixels under the same row: (re)stored, measured anew
            store.put_generation(spec, image, {}, {**provenance, "source": str(row.image), "row": row.row,
                                                  "columns": row.extra})
            out.added += 1
        out.specs.append(spec)
        out.rows.append(row)
    return out


def require_rows(ingested: Ingested) -> None:
    """Nothing to score at all is an error; a partial folder is scored."""
    if not ingested.specs:
        raise IdriftError("no row of the manifest can be scored:\n  " +
                          "\n  ".join(p.line() for p in ingested.problems))
