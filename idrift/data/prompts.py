"""Versioned prompt sets.

A prompt set is data: `idrift/data/prompts/<name>_v<version>.json` holding
`{"name", "version", "description", "prompts": [{"id", "text", "tier"?}]}`. A changed prompt
must ship as a new version (a new file), never as an edit, because stored baselines were measured
with the old text. The content hash of the file goes into provenance, so a silent edit still shows.

Shipped sets:
- `eval` (v1): the paper's three evaluation prompts, ids `portrait`, `beach`, `suit`.
- `complexity` (v1): six tiers, `minimal` (0) to `style` (5); each tier adds constraints to the last.

Example:
    >>> ps = load_prompt_set("eval")
    >>> ps.ids
    ('portrait', 'beach', 'suit')
    >>> ps["beach"].text.startswith("A photo of the person")
    True
    >>> [p.tier for p in load_prompt_set("complexity_v1")]
    [0, 1, 2, 3, 4, 5]
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from idrift.errors import IdriftError

PROMPTS_DIR = Path(__file__).parent / "prompts"
MAX_TIER = 5
_FILE_RE = re.compile(r"^(?P<name>[a-z0-9_]+)_v(?P<version>[0-9]+)\.json$")


class PromptSetError(IdriftError, ValueError):
    """A prompt set name is unknown or its file is malformed. The message names the file and field."""


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    tier: int | None = None  # complexity tier 0..5; None for sets without tiers


@dataclass(frozen=True)
class PromptSet:
    name: str
    version: int
    description: str
    prompts: tuple[Prompt, ...]
    sha256: str  # of the file's canonical JSON (sort_keys), first 16 hex digits
    path: str

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.prompts)

    @property
    def label(self) -> str:
        return f"{self.name}_v{self.version}"

    def __getitem__(self, prompt_id: str) -> Prompt:
        for p in self.prompts:
            if p.id == prompt_id:
                return p
        raise KeyError(f"prompt set {self.label} has no prompt {prompt_id!r}; its ids are {', '.join(self.ids)}")

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    def __len__(self) -> int:
        return len(self.prompts)

    def provenance(self) -> dict:
        return {"prompt_set": self.label, "sha256": self.sha256}


def available_prompt_sets() -> list[str]:
    """Names of the shipped sets as `<name>_v<version>`, sorted."""
    return sorted(p.name[: -len(".json")] for p in PROMPTS_DIR.glob("*.json") if _FILE_RE.match(p.name))


def _resolve(name: str) -> Path:
    available = available_prompt_sets()
    if name in available:
        return PROMPTS_DIR / f"{name}.json"
    # A bare name means its latest version.
    versions = [a for a in available if a.rsplit("_v", 1)[0] == name]
    if versions:
        return PROMPTS_DIR / f"{max(versions, key=lambda a: int(a.rsplit('_v', 1)[1]))}.json"
    path = Path(name)
    if path.suffix == ".json":
        if not path.is_file():
            raise PromptSetError(f"prompt set file {str(path)!r} does not exist")
        return path
    raise PromptSetError(
        f"unknown prompt set {name!r}; available: {', '.join(available)} "
        "(a bare name such as 'eval' means its latest version; a path to a .json file also works)"
    )


def _fail(path: Path, what: str) -> PromptSetError:
    return PromptSetError(f"prompt set {str(path)!r}: {what}")


def _parse(path: Path, data: object) -> tuple[str, int, str, tuple[Prompt, ...]]:
    if not isinstance(data, dict):
        raise _fail(
            path, f"expected a JSON object with keys name, version, description, prompts; got {type(data).__name__}"
        )
    missing = [k for k in ("name", "version", "description", "prompts") if k not in data]
    if missing:
        raise _fail(path, f"missing key(s) {', '.join(missing)}")
    extra = sorted(set(data) - {"name", "version", "description", "prompts"})
    if extra:
        raise _fail(path, f"unknown key(s) {', '.join(extra)}; allowed: name, version, description, prompts")
    name, version, description, items = data["name"], data["version"], data["description"], data["prompts"]
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
        raise _fail(path, f"'name' must be a lower-case identifier, got {name!r}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(path, f"'version' must be an int >= 1, got {version!r}")
    match = _FILE_RE.match(path.name)
    if path.parent.resolve() == PROMPTS_DIR.resolve() and (
        not match or match["name"] != name or int(match["version"]) != version
    ):
        raise _fail(path, f"file name must be {name}_v{version}.json to match its name and version")
    if not isinstance(description, str):
        raise _fail(path, "'description' must be a string")
    if not isinstance(items, list) or not items:
        raise _fail(path, "'prompts' must be a non-empty list of {id, text, tier?} objects")

    prompts: list[Prompt] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"prompts[{i}]"
        if not isinstance(item, dict):
            raise _fail(path, f"{where} must be an object with id, text and optional tier")
        extra = sorted(set(item) - {"id", "text", "tier"})
        if extra:
            raise _fail(path, f"{where} has unknown key(s) {', '.join(extra)}; allowed: id, text, tier")
        pid, text, tier = item.get("id"), item.get("text"), item.get("tier")
        if not isinstance(pid, str) or not re.fullmatch(r"[a-z0-9_]+", pid):
            raise _fail(path, f"{where}.id must be a lower-case identifier, got {pid!r}")
        if pid in seen:
            raise _fail(path, f"duplicate prompt id {pid!r}; ids must be unique")
        seen.add(pid)
        if not isinstance(text, str) or not text.strip():
            raise _fail(path, f"{where} ({pid!r}) has empty or missing 'text'")
        if tier is not None and (not isinstance(tier, int) or isinstance(tier, bool) or not 0 <= tier <= MAX_TIER):
            raise _fail(path, f"{where} ({pid!r}) tier must be an int in 0..{MAX_TIER}, got {tier!r}")
        prompts.append(Prompt(id=pid, text=text, tier=tier))

    tiers = [p.tier for p in prompts]
    if any(t is not None for t in tiers):
        if any(t is None for t in tiers):
            raise _fail(path, "either every prompt has a 'tier' or none does")
        if tiers != sorted(tiers):
            raise _fail(path, f"prompts must be listed in tier order (0..{MAX_TIER}), got tiers {tiers}")
    return name, version, description, tuple(prompts)


def load_prompt_set(name: str) -> PromptSet:
    """Load and validate a prompt set by `name` ('eval'), `name_vN` ('eval_v1') or a .json path."""
    path = _resolve(name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON: {exc}") from exc
    set_name, version, description, prompts = _parse(path, data)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return PromptSet(
        name=set_name,
        version=version,
        description=description,
        prompts=prompts,
        sha256=hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16],
        path=str(path),
    )
