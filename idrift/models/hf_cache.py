"""The offline Hugging Face cache lookup: a hub id (`owner/name`) becomes its cached snapshot folder.

idrift never downloads: `resolve_hub_id` asks huggingface_hub for a snapshot with
`local_files_only=True`, so a repository that is not cached is an error that says how to fill the
cache, never a network call. The cache folder is read from the environment at call time, so tests and
users can point HF_HOME elsewhere after idrift is imported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from idrift.errors import WeightsError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def hf_hub_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The Hugging Face hub cache huggingface_hub would use: HF_HUB_CACHE > HF_HOME/hub > ~/.cache/huggingface/hub."""
    env = os.environ if env is None else env
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HUGGINGFACE_HUB_CACHE"):  # older name
        return Path(env["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(home, "hub").expanduser()


def looks_like_hub_id(value: str) -> bool:
    """`owner/name` that is not an existing local path."""
    return bool(_HUB_ID.match(value)) and not Path(value).expanduser().exists()


def resolve_hub_id(repo_id: str, env: Mapping[str, str] | None = None) -> Path:
    """The cached snapshot folder of `repo_id`, offline. Raises WeightsError when it is not cached."""
    cache = hf_hub_cache_dir(env)
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:
        raise WeightsError(
            f"{repo_id} is not a local folder, and huggingface_hub (needed to read the cache) is not installed"
        ) from exc
    try:
        # local_files_only: a cache lookup, never a network call (HF_HUB_OFFLINE semantics).
        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=str(cache)))
    except Exception as exc:  # no snapshot, an incomplete snapshot, a broken cache
        if isinstance(exc, LocalEntryNotFoundError):
            reason = "no cached snapshot"
        else:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"{repo_id} is neither a local folder nor a repository in the Hugging Face cache {cache} ({reason}); "
            f"idrift never downloads: fill the cache once with `hf download {repo_id}`, or use a local folder"
        ) from exc
