"""The manifest of a folder of images made by another identity method, for `idrift score`.

A manifest is a CSV file with a header row, or a JSON file holding a list of row objects (or
{"rows": [...]}). One row per image:

    column     required  meaning
    image      yes       the image file, relative to the manifest's folder (or absolute)
    method     yes       the method's label: letters, digits and . _ + - (e.g. pulid, instantid, infu-sim)
    identity   yes       the identity id
    reference  see note  the identity's reference photograph (same path rules as image)
    prompt     yes       the prompt text the image was made from
    prompt_id  no        a short id pairing images of one prompt across methods (default: from the text)
    seed       yes       the seed (a whole number)
    steps      no        the step budget (a whole number >= 1); several budgets of a method give its drift curve

An identity's reference may be given on one of its rows only (the others leave it empty), or come
from an idrift identity-set manifest (`--identities`). Other columns are kept in each sample's
provenance (an exported run writes `run_key`, the key of the sample it came from).

Parsing never stops at a bad row: every problem is a `Problem` (the row number, 1 for the first row
under the header, and what is wrong), and the good rows go on. Whether the image and reference files
can be read is checked when they are scored (idrift.scoring.ingest), which adds its problems to the
same list.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from idrift.errors import IdriftError

COLUMNS = ("image", "method", "identity", "reference", "prompt", "prompt_id", "seed", "steps")
REQUIRED = ("image", "method", "identity", "prompt", "seed")
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # method, identity and prompt ids: safe in metric ids


class ScoreManifestError(IdriftError):
    """The manifest as a whole cannot be read (no file, not CSV/JSON, no header). Bad rows are Problems."""


@dataclass(frozen=True)
class Problem:
    row: int  # 1 = the first row under the header (CSV) or the first object (JSON)
    what: str

    def line(self) -> str:
        return f"row {self.row}: {self.what}"


@dataclass(frozen=True)
class Row:
    row: int
    image: Path
    method: str
    identity: str
    reference: Path | None
    prompt: str
    prompt_id: str
    seed: int
    steps: int | None
    extra: dict = field(default_factory=dict)  # columns idrift does not read, kept in the provenance

    @property
    def sample(self) -> tuple:
        """What makes a row unique: a second row with the same tuple is a duplicate."""
        return (self.method, self.identity, self.prompt_id, self.seed, self.steps)


@dataclass
class Manifest:
    path: Path
    rows: list[Row]
    problems: list[Problem]
    references: dict[str, tuple[Path, int]]  # identity -> (reference photograph, the row that named it)
    n_rows: int


def prompt_id_of(text: str) -> str:
    """A prompt's id when the manifest gives none: stable across methods, short."""
    return "p" + hashlib.sha256(text.strip().encode()).hexdigest()[:8]


def read_rows(path: Path) -> list[dict]:
    """The raw rows (str -> value) of a CSV or JSON manifest."""
    if not path.is_file():
        raise ScoreManifestError(f"manifest {path} not found; give a CSV or JSON file (docs/scoring.md)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScoreManifestError(f"manifest {path} cannot be read ({exc}); write it as UTF-8 CSV or JSON") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScoreManifestError(f"manifest {path} is not valid JSON ({exc})") from None
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            data = data["rows"]
        if not isinstance(data, list):
            raise ScoreManifestError(f"manifest {path}: expected a list of row objects or {{\"rows\": [...]}}")
        return [item if isinstance(item, dict) else {"__bad__": type(item).__name__} for item in data]
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ScoreManifestError(f"manifest {path}: the header lacks {', '.join(missing)} (it has "
                                 f"{', '.join(header) or 'nothing'}); columns: {', '.join(COLUMNS)}")
    return [{(k or "").strip(): v for k, v in row.items()} for row in reader]


def _path(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def _whole(value, name: str, minimum: int | None = None) -> int:
    text = str(value).strip()
    if not re.fullmatch(r"-?[0-9]+", text):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    number = int(text)
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number


def parse_row(number: int, raw: dict, base: Path) -> Row:
    """One row, or ValueError saying what is wrong with it."""
    if "__bad__" in raw:
        raise ValueError(f"expected an object with the columns {', '.join(REQUIRED)}, got a {raw['__bad__']}")
    value = {k: ("" if raw.get(k) is None else str(raw[k]).strip()) for k in COLUMNS}
    empty = [c for c in REQUIRED if not value[c]]
    if empty:
        raise ValueError(f"{', '.join(empty)} empty or missing")
    for name in ("method", "identity", "prompt_id"):
        if value[name] and not LABEL.match(value[name]):
            raise ValueError(f"{name} {value[name]!r} may hold only letters, digits and . _ + - "
                             "(it names figures such as id_sim[METHOD])")
    return Row(row=number, image=_path(value["image"], base), method=value["method"], identity=value["identity"],
               reference=_path(value["reference"], base) if value["reference"] else None, prompt=value["prompt"],
               prompt_id=value["prompt_id"] or prompt_id_of(value["prompt"]), seed=_whole(value["seed"], "seed"),
               steps=_whole(value["steps"], "steps", 1) if value["steps"] else None,
               extra={k: v for k, v in raw.items() if k not in COLUMNS and v not in (None, "")})


def load_score_manifest(path: str | os.PathLike) -> Manifest:
    """Parse a manifest: the good rows, one Problem per bad row (malformed, duplicate, a prompt id that
    names two texts, an identity given two references), and each identity's reference."""
    path = Path(path)
    raws = read_rows(path)
    if not raws:
        raise ScoreManifestError(f"manifest {path} has no rows")
    base = path.resolve().parent
    rows, problems = [], []
    seen: dict[tuple, int] = {}
    prompts: dict[str, tuple[str, int]] = {}
    references: dict[str, tuple[Path, int]] = {}
    for number, raw in enumerate(raws, start=1):
        try:
            row = parse_row(number, raw, base)
        except ValueError as exc:
            problems.append(Problem(number, str(exc)))
            continue
        if row.sample in seen:
            problems.append(Problem(number, f"duplicate of row {seen[row.sample]} (same method, identity, prompt, "
                                            "seed and steps); remove one"))
            continue
        text, first = prompts.setdefault(row.prompt_id, (row.prompt, number))
        if text != row.prompt:
            problems.append(Problem(number, f"prompt_id {row.prompt_id!r} has another text in row {first}; "
                                            "give each prompt text its own id"))
            continue
        if row.reference is not None:
            known, where = references.setdefault(row.identity, (row.reference, number))
            if known.resolve() != row.reference.resolve():
                problems.append(Problem(number, f"identity {row.identity!r} has reference {known} in row {where}; "
                                                "one identity has one reference photograph"))
                continue
        seen[row.sample] = number
        rows.append(row)
    return Manifest(path=path, rows=rows, problems=problems, references=references, n_rows=len(raws))


def write_manifest_csv(path: Path, rows: list[dict]) -> Path:
    """A manifest written by idrift (an exported run): the columns in COLUMNS order, then the others."""
    extra = sorted({k for row in rows for k in row} - set(COLUMNS))
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*COLUMNS, *extra])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in (*COLUMNS, *extra)})
    return path
