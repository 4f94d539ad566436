"""Verify weight files that `check_weights` found: a file reported "found" must also load.

`check_weights` reads layouts, JSON configs and magic numbers; a truncated checkpoint or a garbage
ONNX file passes those. `verify_file` opens each file as its loader will, without reading tensors
into memory:

    *.safetensors  the header parses (8-byte length, JSON) and the file is exactly as long as the
                   header's largest data offset says (a truncated shard fails here)
    *.bin/.pth/.pt torch.load(weights_only=True, mmap=True) (legacy, non-zip checkpoints without mmap)
    *.onnx         onnx.load without external data: the protobuf parses and holds a graph

`verify_statuses` turns each found component with a bad file into a not-found one whose problem
reads "corrupt: <why>", so `idrift weights check` and `idrift run --profile real` list it.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".onnx")


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes, shorter than a safetensors header"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            return f"header length {n} exceeds the file ({size} bytes): truncated"
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return f"safetensors header is not JSON ({exc})"
    if not isinstance(header, dict):
        return "safetensors header is not a JSON object"
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"
               and isinstance(v, dict) and "data_offsets" in v), default=0)
    if 8 + n + end != size:
        return f"{size} bytes, the header says {8 + n + end}: truncated or padded (re-copy the file)"
    return None


def _torch_problem(path: Path) -> str | None:
    import torch

    try:
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            torch.load(path, map_location="cpu", weights_only=True)  # a legacy (non-zip) checkpoint
    except Exception as exc:  # any failure to load is the finding: torch raises many types here
        return f"torch.load fails ({str(exc).splitlines()[0][:200]})"
    return None


def _onnx_problem(path: Path) -> str | None:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        return f"not an ONNX model ({str(exc).splitlines()[0][:200] or type(exc).__name__})"
    if not model.graph.node:
        return "an ONNX file without a graph"
    return None


def verify_file(path: str | Path) -> str | None:
    """Why the weight file at `path` cannot be loaded, or None when it can."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            return _safetensors_problem(path)
        if path.suffix in (".bin", ".pth", ".pt"):
            return _torch_problem(path)
        if path.suffix == ".onnx":
            return _onnx_problem(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None


def weight_files(path: str | Path) -> list[Path]:
    """The weight files of a component: the file itself, or every weight file under the folder."""
    path = Path(path)
    if path.is_file():
        return [path] if path.suffix in SUFFIXES else []
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file() and ".cache" not in p.parts)


def verify_statuses(statuses):
    """WeightStatus list -> the same, with each found component's corrupt files as its problems."""
    out = []
    for status in statuses:
        if not status.found:
            out.append(status)
            continue
        problems = []
        for file in weight_files(status.path):
            why = verify_file(file)
            if why:
                problems.append(f"{status.component}: {file}: corrupt: {why}; re-download or re-copy it "
                                f"(set with {status.option} or {status.env})")
        out.append(dataclasses.replace(status, found=False, problems=tuple(problems)) if problems else status)
    return out
