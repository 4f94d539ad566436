"""File-level layout checks shared by the components: JSON files, torch checkpoints, model folders, tokenizers.

Each function reads file names, JSON and magic numbers only - never a tensor - and returns its
problems as self-contained lines (`read_json` and `read_json_dict` return the data and a problem).
`idrift.models.component_checks` builds each component's check from these.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from idrift.errors import WeightsError
from idrift.models.fingerprint import LFS_POINTER_PREFIX, read_safetensors_header


def read_json(path: Path) -> tuple[Any, str | None]:
    try:
        with open(path, "rb") as f:
            head = f.read(len(LFS_POINTER_PREFIX))
        if head == LFS_POINTER_PREFIX:
            return None, f"{path.name} is a Git LFS pointer, not the file: run `git lfs pull`"
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"malformed {path.name} ({str(exc).splitlines()[0]})"


def read_json_dict(path: Path) -> tuple[dict | None, str | None]:
    data, problem = read_json(path)
    if problem is None and not isinstance(data, dict):
        return None, f"malformed {path.name} (not a JSON object)"
    return data, problem


def torch_file_problem(path: Path) -> str | None:
    """A cheap 'is this a torch.save file' test: zip (PK) or legacy pickle (0x80) magic."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(len(LFS_POINTER_PREFIX))
    except OSError as exc:
        return f"cannot read {path.name} ({exc})"
    if size == 0:
        return f"{path.name} is empty"
    if head == LFS_POINTER_PREFIX:
        return f"{path.name} is a Git LFS pointer, not the weights: run `git lfs pull`"
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        return f"{path.name} is not a PyTorch checkpoint (no zip or pickle header); re-copy the file"
    return None


def _weights_problems(folder: Path, stem: str, bin_name: str, shown: str) -> list[str]:
    """Problems with the weights of one model folder: `<stem>.safetensors`, or an index + shards, or a .bin."""
    single = folder / f"{stem}.safetensors"
    index = folder / f"{stem}.safetensors.index.json"
    problems: list[str] = []
    if index.is_file():
        data, problem = read_json_dict(index)
        if problem:
            return [f"{shown}/{index.name}: {problem}"]
        weight_map = data.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            return [f"{shown}/{index.name}: malformed shard index (no weight_map)"]
        shards: dict[str, list[str]] = {}
        for tensor, shard in weight_map.items():
            shards.setdefault(str(shard), []).append(tensor)
        missing = sorted(s for s in shards if not (folder / s).is_file())
        if missing:
            problems.append(f"{shown}: missing {len(missing)} of the {len(shards)} shards listed in {index.name} "
                            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); the copy is incomplete")
        for shard, tensors in sorted(shards.items()):
            if shard in missing:
                continue
            try:
                header = read_safetensors_header(folder / shard)
            except WeightsError as exc:
                problems.append(str(exc))
                continue
            absent = [t for t in tensors if t not in header]
            if absent:
                problems.append(f"{shown}/{shard} lacks {len(absent)} tensors that {index.name} places there "
                                f"(e.g. {absent[0]}): shards from different versions were mixed; re-copy the folder")
        return problems
    if single.is_file():
        try:
            read_safetensors_header(single)
        except WeightsError as exc:
            return [str(exc)]
        return []
    if (folder / bin_name).is_file():
        problem = torch_file_problem(folder / bin_name)
        return [f"{shown}: {problem}"] if problem else []
    return [f"{shown}: no weights (expected {stem}.safetensors, or {stem}.safetensors.index.json and its shards)"]


def model_folder_problems(folder: Path, shown: str, kind: str, expect_class: str | None = None) -> list[str]:
    """A model sub-folder: config.json + weights. `kind` is "diffusers" or "transformers"."""
    if not folder.is_dir():
        return [f"{shown}: missing"]
    if not (folder / "config.json").is_file():
        return [f"{shown}: missing config.json"]
    config, problem = read_json_dict(folder / "config.json")
    if problem:
        return [f"{shown}/config.json: {problem}"]
    problems = []
    if expect_class and config.get("_class_name") not in (None, expect_class):
        problems.append(f"{shown}/config.json describes a {config.get('_class_name')}, expected a {expect_class}")
    stem, bin_name = (("diffusion_pytorch_model", "diffusion_pytorch_model.bin") if kind == "diffusers"
                      else ("model", "pytorch_model.bin"))
    return problems + _weights_problems(folder, stem, bin_name, shown)


def tokenizer_problems(folder: Path, shown: str) -> list[str]:
    if not folder.is_dir():
        return [f"{shown}: missing"]
    names = {p.name for p in folder.iterdir()}
    if not names & {"tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model"}:
        return [f"{shown}: no tokenizer files (expected tokenizer.json or tokenizer_config.json)"]
    problems = []
    for name in sorted(names & {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json"}):
        _, problem = read_json(folder / name)
        if problem:
            problems.append(f"{shown}/{name}: {problem}")
    return problems


def class_of(folder: Path) -> str | None:
    """The `_class_name` of a folder's config.json, if it has a readable one."""
    if not (folder / "config.json").is_file():
        return None
    config, problem = read_json_dict(folder / "config.json")
    return None if problem else config.get("_class_name")
