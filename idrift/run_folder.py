"""A run directory: what `idrift run` and `idrift score` write and `compare`, `bless` and `report` read.

    results.json   per claim: figures, per-sample values, expectation outcomes, notes, provenance,
                   the spec keys of its samples; the latency timings; the options of the run
    store/         the results store (SQLite + one PNG per sample) the figures were computed from
    warnings.log   the warnings of the run (printed once, after the progress bars, not through them)

`load_run` reads one back as a `Run`, whose `results()` re-evaluates every claim from its store. This
module imports nothing heavy at its top level: reading a run back loads no model.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from idrift.claims import CLAIMS, CLAIMS_BY_ID, Claim
from idrift.errors import IdriftError
from idrift.verdicts import claim_word, exit_status

RESULTS_FILE = "results.json"
STORE_DIR = "store"
WARNINGS_LOG = "warnings.log"  # warnings held while the progress bars ran (idrift.held_warnings)
RUN_FORMAT = 1  # version of results.json; load_run refuses others


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def unreadable_results_advice(out: Path) -> str:
    """What to do about an unreadable results.json: the same advice from `run`, `compare` and `report`."""
    return (f"remove it and rerun the run's `idrift run ... --out {out}` (its samples stay in {out / STORE_DIR} "
            "and are reused), or choose another --out")


def outcome_dict(outcome) -> dict:
    e = outcome.expect
    return {"metric": e.metric, "op": e.op, "value": e.value, "profiles": list(e.profiles), "why": e.why,
            "status": outcome.status, "measured": outcome.measured, "reason": outcome.reason, "part": outcome.part,
            "line": outcome.line(""),  # the expectation's line as pytest prints it (claim id left out)
            "figure": None if outcome.figure is None else outcome.figure.as_dict()}


def claim_entry(session, result, keys: list[str]) -> dict:
    from idrift.evaluate import claim_verdict as judged

    claim = result.claim
    return {
        "title": claim.title, "paper": claim.paper, "protocol": claim.protocol,
        "figures": result.figures, "samples": result.samples, "notes": result.notes,
        "n_records": result.n_records, "n_failed": result.n_failed,
        "expectations": [outcome_dict(o) for o in session.outcomes[claim.id]],
        **dict(zip(("verdict", "verdict_parts", "verdict_tier"), judged(
            claim, session.outcomes[claim.id], session.options.tier, session.options.require_real))),
        "intervals": {m: f.as_dict() for m, f in sorted(result.intervals.items())},
        "spec_keys": keys,
        "provenance": session.provenance,  # every number written carries where it came from
    }


def write_results(out: Path, doc: dict) -> Path:
    """Atomically (temp file + rename): Ctrl-C never leaves half a results.json."""
    path = out / RESULTS_FILE
    text = json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{RESULTS_FILE}.", suffix=".tmp", dir=out)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def any_failed(doc: dict) -> bool:
    """idrift.verdicts.exit_status over the claims' words (FAIL; INCONCLUSIVE under --strict)."""
    require_real = doc["options"].get("require_real", False)
    words = [entry_verdict(entry, require_real) for entry in doc["claims"].values()]
    return bool(exit_status(words, strict=doc["options"].get("strict", False)))


def entry_verdict(entry: dict, require_real: bool = False) -> str:
    """The claim's word: the worst of its expectations' (idrift.verdicts.claim_word)."""
    return claim_word([o["status"] for o in entry["expectations"]], require_real)


@dataclass
class Run:
    """A run directory, read back. `results()` re-evaluates every claim from the store."""

    path: Path
    doc: dict
    notes: list[str] = field(default_factory=list)

    @property
    def profile(self) -> str:
        return self.doc["options"]["profile"]

    @property
    def tier(self) -> str:
        return self.doc["options"]["tier"]

    @property
    def aggregation(self) -> str:
        return self.doc["options"]["aggregation"]

    @property
    def provenance(self) -> dict:
        return self.doc["provenance"]

    @property
    def latency(self) -> dict:
        return self.doc.get("latency") or {}

    @property
    def claims(self) -> list[Claim]:
        """The finished claims, in the paper's order (results.json sorts its keys)."""
        if "scored" in self.doc:  # a scored folder's claims are rebuilt from its results.json
            from idrift.scoring.folder import scored_claims

            return scored_claims(self.doc)
        return [claim for claim in CLAIMS if claim.id in self.doc["claims"]]

    @property
    def store_path(self) -> Path:
        return self.path / self.doc.get("store", STORE_DIR)

    def open_store(self):
        """The run's store, read-only; None when it is gone (results.json alone then)."""
        from idrift.store import ResultsStore

        if not (self.store_path / "results.sqlite").is_file():
            return None
        return ResultsStore(self.store_path, readonly=True)

    def records(self, claim_id: str, store=None) -> list[dict] | None:
        """The claim's per-sample records, as idrift.evaluate reads them; None if the store lacks any."""
        own = store is None
        store = store or self.open_store()
        if store is None:
            return None
        try:
            out = []
            for key in self.doc["claims"][claim_id]["spec_keys"]:
                record = store.get(key)
                if record is None:
                    return None
                # The shape of idrift.runner.as_record (not imported: the runner pulls in torch).
                out.append({"spec": record.spec, "status": record.status, "error": record.error,
                            "stage_seconds": record.stage_seconds,
                            "metrics": {name: entry["values"] for name, entry in record.metrics.items()}})
            return out
        finally:
            if own:
                store.close()

    def results(self) -> dict:
        """claim id -> ClaimResult, re-evaluated from the store's samples with the run's aggregation.

        Latency figures too: the timed rounds are stored with the arms' samples (the metric `latency`).
        Where the store is gone or lacks samples, the claim's figures come from results.json, with
        a note. Where re-evaluation disagrees with results.json, a note says the store changed.
        """
        from scipy.stats import ConstantInputWarning

        from idrift.evaluate import ClaimResult, evaluate
        from idrift.stats import Figure

        out = {}
        store = self.open_store()
        if store is None:
            self.notes.append(f"store {self.store_path} not found: figures taken from {RESULTS_FILE} as written")
        try:
            for claim in self.claims:
                entry = self.doc["claims"][claim.id]
                records = None if store is None else self.records(claim.id, store)
                if records is None:
                    if store is not None:
                        self.notes.append(f"{claim.id}: the store lacks some of its samples: figures taken "
                                          f"from {RESULTS_FILE} as written")
                    out[claim.id] = ClaimResult(claim=claim, figures=dict(entry["figures"]),
                                                samples={k: dict(v) for k, v in entry["samples"].items()},
                                                notes=list(entry["notes"]), n_records=entry["n_records"],
                                                n_failed=entry["n_failed"],
                                                intervals={m: Figure.from_dict(f)
                                                           for m, f in entry.get("intervals", {}).items()})
                    continue
                with warnings.catch_warnings():
                    # A constant input makes a rank correlation undefined: evaluate drops that figure
                    # and says so in the claim's notes; scipy's warning would only repeat it.
                    warnings.simplefilter("ignore", ConstantInputWarning)
                    result = evaluate(claim, records, aggregation=self.aggregation)
                changed = sorted(k for k in result.figures.keys() | entry["figures"].keys()
                                 if result.figures.get(k) != entry["figures"].get(k))
                if changed:
                    self.notes.append(f"{claim.id}: re-evaluated from the store, {len(changed)} figure(s) differ "
                                      f"from {RESULTS_FILE} (the store changed since the run): "
                                      f"{', '.join(changed[:5])}")
                out[claim.id] = result
        finally:
            if store is not None:
                store.close()
        return out


def load_run(path: str | os.PathLike) -> Run:
    """Read RUN_DIR/results.json; every problem is an IdriftError that says what to do."""
    path = Path(path)
    if not path.is_dir():
        raise IdriftError(f"run directory {path} does not exist; create one with `idrift run --out {path}`")
    file = path / RESULTS_FILE
    if not file.is_file():
        raise IdriftError(f"{path} has no {RESULTS_FILE}: not a run directory, or its run stopped before the "
                          f"first claim finished; run `idrift run --out {path}` (it resumes)")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IdriftError(f"{file} cannot be read ({exc}); {unreadable_results_advice(path)}") from None
    if not isinstance(doc, dict) or doc.get("run_format") != RUN_FORMAT:
        found = doc.get("run_format") if isinstance(doc, dict) else None
        raise IdriftError(f"{file}: run_format {found!r}, this idrift reads {RUN_FORMAT}; rerun `idrift run`")
    if "scored" in doc:  # a folder of another method's images (`idrift score`): its claims are its own
        from idrift.scoring.folder import check_scored

        check_scored(path, doc)
    unknown = [c for c in doc.get("claims", {}) if c not in CLAIMS_BY_ID and "scored" not in doc]
    if unknown:
        raise IdriftError(f"{file}: unknown claim(s) {', '.join(unknown)} (written by another idrift version?)")
    if not doc["claims"]:
        raise IdriftError(f"{file} holds no finished claim; run `idrift run --out {path}` (it resumes)")
    run = Run(path=path, doc=doc)
    if not doc.get("complete"):
        run.notes.append(f"the run in {path} is incomplete ({len(doc['claims'])} of "
                         f"{len(doc['options']['claims'])} claims): rerun its command to finish it")
    return run
