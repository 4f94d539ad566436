"""Reading, writing and diffing baseline files.

    >>> from idrift.baselines.io import baselines_dir, resolve_baseline, load_baseline
    >>> baseline = load_baseline(resolve_baseline("paper", baselines_dir()))   # doctest: +SKIP
    >>> baseline.metric("table1_backbone_swap", "speedup").aggregate       # doctest: +SKIP
    5.9

Every problem with a file is a `BaselineError` naming the file, the JSON path of the fault and what to do.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema

from idrift.baselines.schema import BASELINE_SCHEMA, SCHEMA_VERSION
from idrift.errors import BaselineError

_REBLESS = "re-bless it with `idrift bless` or --idrift-update-baselines"


@dataclass
class MetricBaseline:
    aggregate: float
    n: int | None
    tolerance: float
    tolerance_kind: str
    direction: str
    unit: str
    hardware_bound: bool = False
    note: str = ""
    samples: dict[str, float] | None = None  # None: aggregate-only (e.g. the paper's numbers)

    def to_dict(self) -> dict:
        out = {
            "aggregate": self.aggregate,
            "n": self.n,
            "tolerance": self.tolerance,
            "tolerance_kind": self.tolerance_kind,
            "direction": self.direction,
            "unit": self.unit,
            "hardware_bound": self.hardware_bound,
            "note": self.note,
        }
        if self.samples is not None:
            out["samples"] = dict(self.samples)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> MetricBaseline:
        return cls(
            aggregate=d["aggregate"],
            n=d["n"],
            tolerance=d["tolerance"],
            tolerance_kind=d["tolerance_kind"],
            direction=d["direction"],
            unit=d["unit"],
            hardware_bound=d["hardware_bound"],
            note=d["note"],
            samples=dict(d["samples"]) if "samples" in d else None,
        )


@dataclass
class ClaimBaseline:
    protocol: str  # which subset / protocol the numbers come from
    metrics: dict[str, MetricBaseline]
    # The run that measured this entry, when it is not the file's (an entry updated on its own, such as
    # an entry blessed apart from the others). None: the file's provenance.
    provenance: dict | None = None

    def to_dict(self) -> dict:
        out = {"protocol": self.protocol, "metrics": {m: v.to_dict() for m, v in self.metrics.items()}}
        if self.provenance is not None:
            out["provenance"] = dict(self.provenance)
        return out


@dataclass
class Baseline:
    name: str
    description: str
    created: str
    provenance: dict
    claims: dict[str, ClaimBaseline]
    schema_version: int = SCHEMA_VERSION
    path: Path | None = field(default=None, compare=False)  # where it was loaded from, for messages

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "description": self.description,
            "created": self.created,
            "provenance": self.provenance,
            "claims": {c: v.to_dict() for c, v in self.claims.items()},
        }

    @classmethod
    def from_dict(cls, d: dict, path: Path | None = None) -> Baseline:
        claims = {
            cid: ClaimBaseline(
                protocol=c["protocol"],
                metrics={mid: MetricBaseline.from_dict(m) for mid, m in c["metrics"].items()},
                provenance=dict(c["provenance"]) if "provenance" in c else None,
            )
            for cid, c in d["claims"].items()
        }
        return cls(
            name=d["name"],
            description=d["description"],
            created=d["created"],
            provenance=d["provenance"],
            claims=claims,
            schema_version=d["schema_version"],
            path=path,
        )

    def metric(self, claim: str, metric: str) -> MetricBaseline:
        """The baseline entry of one metric; a clear error when the baseline lacks it."""
        where = self.path or self.name
        if claim not in self.claims:
            raise BaselineError(
                f"{where}: no claim {claim!r} (it has: {', '.join(sorted(self.claims)) or 'none'}); "
                f"bless a baseline that covers it or choose another with --idrift-baseline"
            )
        metrics = self.claims[claim].metrics
        if metric not in metrics:
            raise BaselineError(
                f"{where}: claim {claim!r} has no metric {metric!r} (it has: {', '.join(sorted(metrics))}); "
                f"{_REBLESS}"
            )
        return metrics[metric]


# ---------------------------------------------------------------------------------------------- paths

# The baseline files live in the repository's top-level `baselines/` folder (the source, where `idrift bless`
# writes); a wheel carries a copy as the package data `idrift.baselines.data` (setup.py maps the folder there).
PACKAGED_BASELINES = "data"


def baselines_dir() -> Path:
    """The folder holding the named baselines (tiny-cpu, paper, h100-synthetic, ...): the packaged copy of an
    installed wheel, else the checkout's top-level `baselines/`. Every lookup by name goes through here."""
    packaged = resources.files("idrift.baselines") / PACKAGED_BASELINES
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "baselines"
    if checkout.is_dir():
        return checkout
    raise BaselineError(
        f"no baseline folder: neither {packaged} (an installed wheel) nor {checkout} (a checkout) exists; "
        f"reinstall idrift, or pass a baseline file by its path"
    )


def available_baselines(search_dir: str | os.PathLike) -> list[str]:
    d = Path(search_dir)
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def resolve_baseline(name_or_path: str | os.PathLike, search_dir: str | os.PathLike) -> Path:
    """`paper` -> `<search_dir>/paper.json`; a path (has a separator or ends in .json) is taken as is."""
    text = os.fspath(name_or_path)
    looks_like_path = text.endswith(".json") or os.sep in text or (os.altsep and os.altsep in text)
    if looks_like_path:
        path = Path(text)
        if path.is_dir():
            raise BaselineError(f"baseline {path} is a folder, not a baseline file; give a .json file in it "
                                f"(e.g. {path / 'paper.json'}) or a baseline name")
        if not path.is_file():
            raise BaselineError(f"baseline file {path} does not exist; give an existing file or a baseline name")
        return path
    path = Path(search_dir) / f"{text}.json"
    if not path.is_file():
        names = available_baselines(search_dir)
        listing = ", ".join(names) if names else "none"
        raise BaselineError(
            f"no baseline named {text!r} in {search_dir} (available: {listing}); "
            f"pass one of those names, a path to a .json file, or create it with `idrift bless`"
        )
    return path


# ----------------------------------------------------------------------------------------- validation


def _json_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _first_error(doc: dict) -> tuple[str, int] | None:
    """(path: message, number of errors) of the most relevant schema error, or None when valid."""
    validator = jsonschema.Draft202012Validator(BASELINE_SCHEMA)
    errors = list(validator.iter_errors(doc))
    if not errors:
        return None
    err = jsonschema.exceptions.best_match(errors)
    path = _json_path(err.absolute_path)
    if "propertyNames" in err.absolute_schema_path:
        # The error is about a key, not a value: say so, or "'x' does not match" reads as a value.
        msg = f"key {err.instance!r} is not allowed: {err.message}"
    else:
        msg = err.message
    return f"{path}: {msg}", len(errors)


def _semantic_errors(doc: dict) -> list[str]:
    """Checks a schema cannot express."""
    problems = []
    for cid, claim in doc["claims"].items():
        for mid, m in claim["metrics"].items():
            if "samples" in m and m["n"] != len(m["samples"]):
                problems.append(
                    f"claims.{cid}.metrics.{mid}.n: {m['n']} but there are {len(m['samples'])} samples; "
                    f"n must count the samples"
                )
    return problems


def validate_baseline_dict(doc, source: str) -> None:
    """Raise BaselineError (naming `source` and the JSON path) unless `doc` is a valid current baseline."""
    if not isinstance(doc, dict):
        raise BaselineError(f"{source}: (top level): expected a JSON object, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version != SCHEMA_VERSION:
        if version < SCHEMA_VERSION:
            raise BaselineError(
                f"{source}: schema_version: written by an older idrift (schema {version}, this idrift reads "
                f"schema {SCHEMA_VERSION}); {_REBLESS}"
            )
        raise BaselineError(
            f"{source}: schema_version: written by a newer idrift (schema {version}, this idrift reads "
            f"schema {SCHEMA_VERSION}); upgrade idrift"
        )
    first = _first_error(doc)
    if first is not None:
        where, count = first
        more = f" ({count - 1} more error{'s' if count > 2 else ''} after fixing this)" if count > 1 else ""
        raise BaselineError(f"{source}: {where}{more}; fix the file or {_REBLESS}")
    problems = _semantic_errors(doc)
    if problems:
        raise BaselineError(f"{source}: {problems[0]}; fix the file or {_REBLESS}")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON; store a number or drop the sample")


def load_baseline(path: str | os.PathLike) -> Baseline:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"baseline file {path} does not exist; check the path or the baseline name") from None
    except IsADirectoryError:
        raise BaselineError(f"baseline {path} is a folder, not a baseline file; give a .json file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"baseline file {path} cannot be read ({exc}); check the file") from None
    try:
        # NaN/Infinity are Python extensions to JSON; a baseline with them cannot gate anything.
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
            f"fix the file or {_REBLESS}"
        ) from None
    except ValueError as exc:
        raise BaselineError(f"{path}: {exc}") from None
    validate_baseline_dict(doc, str(path))
    return Baseline.from_dict(doc, path=path)


def write_baseline(baseline: Baseline, path: str | os.PathLike) -> Path:
    """Validate, then write atomically (temp file + os.replace): a crash never leaves half a baseline."""
    path = Path(path)
    doc = baseline.to_dict()
    for cid, claim in doc["claims"].items():
        for mid, m in claim["metrics"].items():
            values = [m["aggregate"], m["tolerance"], *(m.get("samples") or {}).values()]
            if not all(math.isfinite(v) for v in values):
                raise BaselineError(
                    f"refusing to write {path}: claims.{cid}.metrics.{mid} holds NaN or inf; "
                    f"drop failed samples before blessing"
                )
    validate_baseline_dict(doc, f"refusing to write {path}")
    text = json.dumps(doc, sort_keys=True, indent=1, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# ----------------------------------------------------------------------------------------------- diff


def _fmt(x) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _tol(m: MetricBaseline) -> str:
    if m.tolerance_kind == "relative":
        return f"{m.tolerance * 100:g}% relative"
    return f"{_fmt(m.tolerance)} absolute"


def _metric_changes(where: str, a: MetricBaseline, b: MetricBaseline) -> list[str]:
    lines = []
    if a.aggregate != b.aggregate:
        lines.append(
            f"~ {where}: aggregate {_fmt(a.aggregate)} -> {_fmt(b.aggregate)} ({b.aggregate - a.aggregate:+.6g})"
        )
    if (a.tolerance, a.tolerance_kind) != (b.tolerance, b.tolerance_kind):
        lines.append(f"~ {where}: tolerance {_tol(a)} -> {_tol(b)}")
    for attr in ("direction", "n", "unit", "hardware_bound"):
        if getattr(a, attr) != getattr(b, attr):
            lines.append(f"~ {where}: {attr} {getattr(a, attr)} -> {getattr(b, attr)}")
    if a.samples != b.samples:
        old, new = a.samples or {}, b.samples or {}
        changed = sum(1 for k in old.keys() & new.keys() if old[k] != new[k])
        added, removed = len(new.keys() - old.keys()), len(old.keys() - new.keys())
        lines.append(
            f"~ {where}: samples {len(old)} -> {len(new)} ({changed} changed, {added} added, {removed} removed)"
        )
    if a.note != b.note:
        lines.append(f"~ {where}: note changed")
    return lines


def diff_baselines(old: Baseline, new: Baseline) -> list[str]:
    """What `new` changes relative to `old`, one readable line per change ('+' added, '-' removed,
    '~' changed). Empty when they hold the same numbers."""
    lines: list[str] = []
    for key in ("profile", "gpu", "command"):
        a, b = old.provenance.get(key), new.provenance.get(key)
        if a != b:
            lines.append(f"~ provenance.{key}: {a} -> {b}")
    for key in ("weights", "packages"):
        a, b = old.provenance.get(key) or {}, new.provenance.get(key) or {}
        for name in sorted(a.keys() | b.keys()):
            if a.get(name) != b.get(name):
                lines.append(f"~ provenance.{key}.{name}: {a.get(name, '(none)')} -> {b.get(name, '(none)')}")
    for cid in sorted(old.claims.keys() | new.claims.keys()):
        if cid not in new.claims:
            lines.append(f"- claim {cid} ({len(old.claims[cid].metrics)} metrics)")
            continue
        if cid not in old.claims:
            lines.append(f"+ claim {cid} ({len(new.claims[cid].metrics)} metrics)")
            for mid, m in sorted(new.claims[cid].metrics.items()):
                lines.append(f"+ {cid} / {mid}: {_fmt(m.aggregate)} (tolerance {_tol(m)}, {m.direction})")
            continue
        a_claim, b_claim = old.claims[cid], new.claims[cid]
        if a_claim.protocol != b_claim.protocol:
            lines.append(f"~ {cid}: protocol {a_claim.protocol!r} -> {b_claim.protocol!r}")
        for mid in sorted(a_claim.metrics.keys() | b_claim.metrics.keys()):
            where = f"{cid} / {mid}"
            if mid not in b_claim.metrics:
                lines.append(f"- {where}: {_fmt(a_claim.metrics[mid].aggregate)}")
            elif mid not in a_claim.metrics:
                m = b_claim.metrics[mid]
                lines.append(f"+ {where}: {_fmt(m.aggregate)} (tolerance {_tol(m)}, {m.direction})")
            else:
                lines.extend(_metric_changes(where, a_claim.metrics[mid], b_claim.metrics[mid]))
    return lines
