"""Cheap fingerprints of weight files and folders, computed without loading a single tensor.

A fingerprint says "these are the same weights as last time" fast enough to run on every benchmark
session, over checkpoints of tens of gigabytes. It is built from what identifies a checkpoint and
costs little to read; what is hashed, per kind of file:

- `*.safetensors`: the file size + the JSON header (every tensor's name, dtype, shape and byte offsets,
  and the metadata) + the first and the last MiB of the file
- `*.json` (config.json, model_index.json, shard indexes, tokenizer files): the whole file
- tokenizer vocabularies (`*.txt`, `*.model`): the whole file (small)
- `*.bin`, `*.pth`, `*.pt`, `*.onnx`, anything else: the file size + the first and the last MiB

This is a FAST fingerprint, not a cryptographic hash of the whole file: at most about 2 MiB plus the
header is read per file, so two files of the same size and layout that differ only in bytes away from
their first and last MiB get the same fingerprint. It catches what happens in practice (another
checkpoint or fine-tune - e.g. InfiniteYou's aes_stage2 vs sim_stage1, whose headers are identical -,
another dtype, a re-sharded or re-exported folder, a truncated copy, a different config), not
tampering. Run `sha256sum` when you need the latter. No tensor is ever deserialised.

A folder's fingerprint combines, in sorted order, each relevant file's path relative to the folder,
its size and its digest; README, licence, image and git files and `.cache/` folders are ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path

from idrift.errors import WeightsError

MIB = 1 << 20
# The safetensors format caps the JSON header at 100 MB; anything larger is not a safetensors header.
MAX_SAFETENSORS_HEADER = 100_000_000
FINGERPRINT_CHARS = 16

_WHOLE_FILE_SUFFIXES = {".json", ".txt", ".model"}
_WHOLE_FILE_LIMIT = 64 * MIB  # a "small" file above this is hashed head + tail instead
_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".onnx", ".pkl", ".msgpack", ".h5"}
_IGNORED_DIRS = {".cache", ".git", ".huggingface", "__pycache__"}
_IGNORED_SUFFIXES = {".md", ".png", ".jpg", ".jpeg", ".webp", ".gif", ".lock", ".gitattributes", ".gitignore"}
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"


def is_lfs_pointer(path: str | os.PathLike) -> bool:
    """True when the file is a Git LFS pointer (a clone without `git lfs pull`), not the weights."""
    try:
        with open(path, "rb") as f:
            return f.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    except OSError:
        return False


def _raw_safetensors_header(path: Path) -> tuple[bytes, int]:
    """(header JSON bytes, file size), validated only for length. Raises WeightsError."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise WeightsError(
                    f"corrupt safetensors file {path}: {size} bytes, too short for the 8-byte header length"
                )
            if prefix == LFS_POINTER_PREFIX[:8]:
                raise WeightsError(
                    f"{path} is a Git LFS pointer, not the weights: run `git lfs pull` in its repository"
                )
            (length,) = struct.unpack("<Q", prefix)
            if length == 0 or length > MAX_SAFETENSORS_HEADER or length > size - 8:
                raise WeightsError(
                    f"corrupt safetensors header in {path}: its first 8 bytes give a header of {length} bytes, "
                    f"but the file has {size} bytes (at most {MAX_SAFETENSORS_HEADER} allowed); re-copy the file"
                )
            raw = f.read(length)
    except OSError as exc:
        raise WeightsError(f"cannot read safetensors file {path}: {exc}") from exc
    return raw, size


def read_safetensors_header(path: str | os.PathLike) -> dict:
    """The JSON header of a safetensors file (tensor name -> dtype, shape, data_offsets; plus
    `__metadata__`), read without touching tensor data.

    Raises `WeightsError` naming the file when the header length is impossible, the header is not a
    JSON object, an entry is malformed, or the file is shorter than its header says (truncated copy).
    """
    return _parse_safetensors(Path(path))[0]


def _parse_safetensors(path: Path) -> tuple[dict, bytes]:
    raw, size = _raw_safetensors_header(path)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(
            f"corrupt safetensors header in {path}: the header is not JSON ({exc}); re-copy the file"
        ) from exc
    if not isinstance(header, dict):
        raise WeightsError(f"corrupt safetensors header in {path}: the header is not a JSON object")
    data_size = size - 8 - len(raw)
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("dtype"), str)
            or not isinstance(entry.get("shape"), list)
            or not isinstance(entry.get("data_offsets"), list)
            or len(entry["data_offsets"]) != 2
            or not all(isinstance(o, int) and o >= 0 for o in entry["data_offsets"])
        ):
            raise WeightsError(f"corrupt safetensors header in {path}: malformed entry for tensor {name!r}")
        end = max(end, entry["data_offsets"][1])
    if end > data_size:
        raise WeightsError(
            f"truncated safetensors file {path}: its header describes {end} bytes of tensor data but the file "
            f"holds {data_size}; the copy or download is incomplete, re-copy the file"
        )
    return header, raw


def _head_tail_digest(path: Path, size: int) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(MIB))
        if size > 2 * MIB:
            f.seek(size - MIB)
            h.update(f.read(MIB))
        elif size > MIB:
            h.update(f.read())
    return h.digest()


def _file_digest(path: Path) -> tuple[int, bytes]:
    """(size, digest) following the table in the module docstring. Raises WeightsError on a corrupt
    safetensors header."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc}") from exc
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        _, raw = _parse_safetensors(path)  # validates: raises on a corrupt or truncated file
        try:
            sample = _head_tail_digest(path, size)  # the header alone is the same for two fine-tunes
        except OSError as exc:
            raise WeightsError(f"cannot read {path}: {exc}") from exc
        return size, hashlib.sha256(b"safetensors\0" + raw + sample).digest()
    try:
        if suffix in _WHOLE_FILE_SUFFIXES and size <= _WHOLE_FILE_LIMIT:
            return size, hashlib.sha256(b"whole\0" + path.read_bytes()).digest()
        return size, hashlib.sha256(b"headtail\0" + _head_tail_digest(path, size)).digest()
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc}") from exc


def fingerprint_file(path: str | os.PathLike) -> str:
    """Fast fingerprint of one file (see the module docstring): 16 hex characters.

    Raises `WeightsError` when the file cannot be read or is a corrupt safetensors file.
    """
    path = Path(path)
    size, digest = _file_digest(path)
    h = hashlib.sha256()
    h.update(f"{path.suffix.lower()}\0{size}\0".encode())
    h.update(digest)
    return h.hexdigest()[:FINGERPRINT_CHARS]


def _relevant(rel: Path) -> bool:
    name = rel.name
    if name.startswith(".") or any(part in _IGNORED_DIRS or part.startswith(".") for part in rel.parts[:-1]):
        return False
    suffix = rel.suffix.lower()
    if suffix in _IGNORED_SUFFIXES or name.upper().startswith(("LICENSE", "LICENCE", "README", "NOTICE")):
        return False
    return True


def folder_files(path: str | os.PathLike) -> list[Path]:
    """The files a folder fingerprint covers, as paths relative to `path`, sorted."""
    root = Path(path)
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS and not d.startswith("."))
        for name in filenames:
            rel = (Path(dirpath) / name).relative_to(root)
            if _relevant(rel):
                out.append(rel)
    return sorted(out, key=lambda p: p.as_posix())


def fingerprint_folder(path: str | os.PathLike, include: Iterable[str] | None = None) -> str:
    """Fast fingerprint of a folder (recursively) or of the listed entries inside it.

    `include`: relative paths of files or sub-folders to cover (e.g. `["transformer", "scheduler"]`);
    None covers the whole folder. A listed entry that does not exist is part of the fingerprint as
    "missing", so adding it later changes the fingerprint.
    """
    root = Path(path)
    h = hashlib.sha256(b"idrift-folder-fingerprint/1\0")
    entries: list[tuple[str, Path | None]] = []
    if include is None:
        entries = [(rel.as_posix(), root / rel) for rel in folder_files(root)]
    else:
        for item in sorted(set(include)):
            target = root / item
            if target.is_dir():
                entries.extend((f"{item}/{rel.as_posix()}", target / rel) for rel in folder_files(target))
            elif target.is_file():
                entries.append((item, target))
            else:
                entries.append((item, None))
    for rel, file in entries:
        if file is None:
            h.update(f"{rel}\0missing\0".encode())
            continue
        size, digest = _file_digest(file)
        h.update(f"{rel}\0{size}\0".encode())
        h.update(digest)
    return h.hexdigest()[:FINGERPRINT_CHARS]


def combine_fingerprints(parts: dict[str, str]) -> str:
    """One fingerprint from named parts (order independent)."""
    blob = "|".join(f"{k}={v}" for k, v in sorted(parts.items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:FINGERPRINT_CHARS]
