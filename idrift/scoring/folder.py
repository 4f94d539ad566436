"""A scored folder read back: what `idrift score --out DIR` wrote, for compare, bless and report.

`idrift score` writes DIR/results.json in the run directory's format (idrift.run_folder) with one
more entry, "scored": the manifest, the claims' arms ({claim id: [[method, steps], ...]}), the
identities, seeds and prompts they cover, and the rows that could not be scored. `load_run` checks
that entry with `check_scored`, and `Run.claims` of such a folder are `scored_claims`: rebuilt from the
entry (idrift.scoring.claims.build_claims) instead of looked up among the paper's, so every reader
re-evaluates the figures from the store with the claims they were judged on.
"""

from __future__ import annotations

from pathlib import Path

from idrift.errors import IdriftError

SCORED = "scored"  # the results.json entry that marks a scored folder
NEEDED = ("arms", "identities", "seeds", "prompts")


def check_scored(path: Path, doc: dict) -> None:
    """An IdriftError when a results.json's "scored" entry is not one idrift wrote."""
    from idrift.scoring.claims import SCORE_CLAIM_IDS

    scored = doc.get(SCORED)
    if not isinstance(scored, dict) or any(k not in scored for k in NEEDED):
        raise IdriftError(f"{path}/results.json: its {SCORED!r} entry lacks {', '.join(NEEDED)}; rerun "
                          f"`idrift score MANIFEST --out {path}` (its samples stay in the store and are reused)")
    unknown = [c for c in doc.get("claims", {}) if c not in SCORE_CLAIM_IDS]
    if unknown:
        raise IdriftError(f"{path}/results.json: unknown scored claim(s) {', '.join(unknown)} "
                          "(written by another idrift version?)")


def scored_claims(doc: dict) -> list:
    """The claims a scored folder was judged on, in the order idrift.scoring.claims builds them."""
    from idrift.scoring.claims import build_claims

    scored = doc[SCORED]
    built = build_claims(scored["arms"], scored["identities"], scored["seeds"], scored["prompts"])
    return [claim for claim in built if claim.id in doc["claims"]]
