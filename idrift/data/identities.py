"""Identity sets: which reference photographs the benchmarks generate from, as a checked manifest.

A manifest is JSON:

    {
      "schema_version": 1,
      "created_with": {...how it was built: tool, filters, backend provenance...},
      "entries": [
        {"identity_id": "alice", "image_path": "photos/alice.jpg",   # relative to the manifest's folder
         "sha256": "<64 hex of the image file>", "face_box": [x1, y1, x2, y2] or null,
         "det_score": 0.93 or null, "age": 34.0 or null}
      ]
    }

`load_manifest` checks the structure and (by default) that every image exists and still has its
sha256, so a swapped or edited photo cannot silently change a baseline.

A manifest built from a folder of photos with the paper's filters comes from `build_identity_set`
(idrift/data/identity_builder.py).

`builtin_identity_set` materialises a small offline set (the astronaut and the six people of
insightface's t1.jpg) from photos that ship inside installed packages, for the tiny profile and CI.

Example:
    >>> import tempfile
    >>> from idrift.data.identities import builtin_identity_set, load_manifest
    >>> manifest = load_manifest(builtin_identity_set(tempfile.mkdtemp()))
    >>> [e.identity_id for e in manifest.entries][:3]
    ['astronaut', 't1_person0', 't1_person1']
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from idrift.errors import IdriftError
from idrift.faces.image_io import load_image

SCHEMA_VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(IdriftError):
    """An identity manifest is missing, malformed, or no longer matches its images."""


@dataclass(frozen=True)
class IdentityEntry:
    identity_id: str
    image_path: str  # relative to the manifest's folder, POSIX separators
    sha256: str
    face_box: tuple[float, float, float, float] | None = None
    det_score: float | None = None
    age: float | None = None

    def as_dict(self) -> dict:
        out = asdict(self)
        out["face_box"] = None if self.face_box is None else [float(v) for v in self.face_box]
        return out


@dataclass(frozen=True)
class IdentityManifest:
    path: Path
    schema_version: int
    created_with: dict
    entries: tuple[IdentityEntry, ...]

    def image_file(self, entry: IdentityEntry) -> Path:
        """The absolute path of an entry's image."""
        return (self.path.parent / entry.image_path).resolve()

    def entry(self, identity_id: str) -> IdentityEntry:
        for e in self.entries:
            if e.identity_id == identity_id:
                return e
        raise KeyError(f"manifest {self.path} has no identity {identity_id!r}")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# Manifest read / write


def load_manifest(path: str | os.PathLike, *, verify: bool = True) -> IdentityManifest:
    """Read and validate a manifest. `verify` also checks each image exists and matches its sha256."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"identity manifest {path} not found; build one with `idrift data build-identities`")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"identity manifest {path} is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ManifestError(f"identity manifest {path}: expected a JSON object, got {type(raw).__name__}")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"identity manifest {path}: schema_version {version!r} is not supported "
            f"(this idrift reads {SCHEMA_VERSION}); rebuild it with `idrift data build-identities`"
        )
    created_with = raw.get("created_with")
    if not isinstance(created_with, dict):
        raise ManifestError(f"identity manifest {path}: 'created_with' must be an object")
    raw_entries = raw.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise ManifestError(f"identity manifest {path}: 'entries' must be a non-empty list")
    entries = []
    seen: set[str] = set()
    for i, item in enumerate(raw_entries):
        entry = _parse_entry(item, f"identity manifest {path}, entry {i}")
        if entry.identity_id in seen:
            raise ManifestError(f"identity manifest {path}: identity_id {entry.identity_id!r} appears twice")
        seen.add(entry.identity_id)
        entries.append(entry)
    manifest = IdentityManifest(path=path, schema_version=version, created_with=created_with, entries=tuple(entries))
    if verify:
        for entry in manifest.entries:
            image = manifest.image_file(entry)
            if not image.is_file():
                raise ManifestError(
                    f"identity manifest {path}: image {entry.image_path} of {entry.identity_id!r} not found at {image}"
                )
            actual = sha256_file(image)
            if actual != entry.sha256:
                raise ManifestError(
                    f"identity manifest {path}: image {entry.image_path} of {entry.identity_id!r} has changed "
                    f"(sha256 {actual[:12]}..., manifest says {entry.sha256[:12]}...); restore the original or rebuild "
                    "the manifest with `idrift data build-identities` (and re-bless baselines that used it)"
                )
    return manifest


def _parse_entry(item, where: str) -> IdentityEntry:
    if not isinstance(item, dict):
        raise ManifestError(f"{where}: expected an object, got {type(item).__name__}")
    missing = [k for k in ("identity_id", "image_path", "sha256") if k not in item]
    if missing:
        raise ManifestError(f"{where}: missing {', '.join(missing)}")
    unknown = set(item) - {"identity_id", "image_path", "sha256", "face_box", "det_score", "age"}
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    identity_id, image_path, sha = item["identity_id"], item["image_path"], item["sha256"]
    if not isinstance(identity_id, str) or not identity_id:
        raise ManifestError(f"{where}: identity_id must be a non-empty string")
    if not isinstance(image_path, str) or not image_path or Path(image_path).is_absolute():
        raise ManifestError(
            f"{where} ({identity_id!r}): image_path must be a path relative to the manifest, got {image_path!r}"
        )
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise ManifestError(f"{where} ({identity_id!r}): sha256 must be 64 lowercase hex digits, got {sha!r}")
    box = item.get("face_box")
    if box is not None:
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            raise ManifestError(f"{where} ({identity_id!r}): face_box must be [x1, y1, x2, y2] or null, got {box!r}")
        box = tuple(float(v) for v in box)
    for key in ("det_score", "age"):
        if item.get(key) is not None and not _is_number(item[key]):
            raise ManifestError(f"{where} ({identity_id!r}): {key} must be a number or null, got {item[key]!r}")
    return IdentityEntry(
        identity_id=identity_id,
        image_path=image_path,
        sha256=sha,
        face_box=box,
        det_score=None if item.get("det_score") is None else float(item["det_score"]),
        age=None if item.get("age") is None else float(item["age"]),
    )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def write_manifest(path: str | os.PathLike, entries: Iterable[IdentityEntry | dict], *, created_with: dict) -> Path:
    """Write a manifest atomically (a reader never sees half a file). Entries are validated first."""
    path = Path(path)
    parsed = [
        _parse_entry(e.as_dict() if isinstance(e, IdentityEntry) else e, f"write_manifest entry {i}")
        for i, e in enumerate(entries)
    ]
    ids = [e.identity_id for e in parsed]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ManifestError(f"write_manifest: identity_id(s) {', '.join(duplicates)} appear more than once")
    if not parsed:
        raise ManifestError("write_manifest: no entries")
    doc = {"schema_version": SCHEMA_VERSION, "created_with": created_with, "entries": [e.as_dict() for e in parsed]}
    atomic_write_bytes(path, (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode("utf-8"))
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# The built-in offline identity set


def builtin_spec() -> dict:
    """The fixed data of the built-in set (idrift/data/identities/builtin.json)."""
    text = resources.files("idrift.data").joinpath("identities/builtin.json").read_text(encoding="utf-8")
    return json.loads(text)


def builtin_source_image(source: str, spec: dict | None = None) -> np.ndarray:
    """A packaged photograph of the built-in set as RGB uint8, checked against its recorded sha256."""
    spec = spec or builtin_spec()
    info = spec["sources"][source]
    if source == "astronaut":
        from skimage import data

        image = np.ascontiguousarray(data.astronaut())
        actual = hashlib.sha256(image.tobytes()).hexdigest()
        where = "skimage.data.astronaut()"
    elif source == "t1":
        import insightface

        path = Path(insightface.__file__).parent / info["file"]
        if not path.is_file():
            raise IdriftError(
                f"built-in identity set: {path} (insightface's packaged group photo) is missing; reinstall insightface"
            )
        actual = sha256_file(path)
        image = load_image(path)
        where = str(path)
    else:
        raise KeyError(f"unknown built-in source {source!r}")
    if actual != info["sha256"]:
        raise IdriftError(
            f"built-in identity set: the packaged photo {where} differs from the one its face boxes were measured on "
            f"(sha256 {actual[:12]}..., expected {info['sha256'][:12]}...); re-measure the boxes in "
            "idrift/data/identities/builtin.json (tests/test_identity_sets.py shows how) or pin the package version"
        )
    return image


def crop_box(
    face_box: Sequence[float], image_shape: tuple[int, ...], margin_factor: float
) -> tuple[int, int, int, int]:
    """A square of `margin_factor` x the box's larger side, centred on the box and shifted to lie inside the image."""
    height, width = image_shape[:2]
    x1, y1, x2, y2 = face_box
    side = min(max(x2 - x1, y2 - y1) * margin_factor, width, height)
    left = min(max(0.0, (x1 + x2) / 2 - side / 2), width - side)
    top = min(max(0.0, (y1 + y2) / 2 - side / 2), height - side)
    return round(left), round(top), round(left + side), round(top + side)


def user_cache_dir(env=None) -> Path:
    """Where idrift caches what it can rebuild (the built-in identity set, ...): $IDRIFT_CACHE, else
    $XDG_CACHE_HOME/idrift, else ~/.cache/idrift. Never the working directory: a run resumed from another
    folder must find the same identity files, or its options would look different."""
    env = os.environ if env is None else env
    if env.get("IDRIFT_CACHE"):
        return Path(env["IDRIFT_CACHE"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "idrift"


def builtin_identity_set(cache_dir: str | os.PathLike | None = None) -> Path:
    """Materialise the built-in identity set under `cache_dir` (once) and return its manifest path.

    Each identity is a size x size PNG crop around a fixed face box in a packaged photo; the manifest's
    face_box is that box in crop pixels. Safe to call from several processes: files are written
    atomically and identical bytes result.
    """
    spec = builtin_spec()
    spec_digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    out_dir = Path(cache_dir if cache_dir is not None else user_cache_dir()) / f"builtin-identities-{spec_digest}"
    manifest_path = out_dir / "manifest.json"
    if manifest_path.is_file():
        try:
            load_manifest(manifest_path)
            return manifest_path
        except ManifestError:
            pass  # stale or damaged cache: rebuild below
    from PIL import Image

    size, margin = int(spec["crop"]["size"]), float(spec["crop"]["margin_factor"])
    sources = {name: builtin_source_image(name, spec) for name in spec["sources"]}
    entries = []
    for item in spec["identities"]:
        image = sources[item["source"]]
        left, top, right, bottom = crop_box(item["face_box"], image.shape, margin)
        scale = size / (right - left)
        crop = Image.fromarray(image).crop((left, top, right, bottom)).resize((size, size), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        crop.save(buffer, format="PNG")
        data = buffer.getvalue()
        filename = f"{item['identity_id']}.png"
        atomic_write_bytes(out_dir / filename, data)
        x1, y1, x2, y2 = item["face_box"]
        entries.append(
            IdentityEntry(
                identity_id=item["identity_id"],
                image_path=filename,
                sha256=hashlib.sha256(data).hexdigest(),
                face_box=tuple(
                    round(v, 2)
                    for v in ((x1 - left) * scale, (y1 - top) * scale, (x2 - left) * scale, (y2 - top) * scale)
                ),
            )
        )
    from idrift import __version__

    write_manifest(
        manifest_path,
        entries,
        created_with={
            "tool": "idrift.data.identities.builtin_identity_set",
            "idrift": __version__,
            "spec": "idrift/data/identities/builtin.json",
            "spec_sha256": spec_digest,
            "crop": spec["crop"],
            "face_boxes": "fixed data measured with the dlib backend; det_score and age not measured",
        },
    )
    return manifest_path
