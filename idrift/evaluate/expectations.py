"""A claim's expectations worded against its figures, and the lines that show a claim's verdict.

`check_expectations` words each expectation by idrift.verdicts.decide (PASS, FAIL, INCONCLUSIVE, or NOT
JUDGEABLE on a profile that cannot judge it); `claim_verdict`, `claim_line` and `summary_lines` are what
pytest, `idrift run`, `idrift compare` and the report print for a claim.
"""

from __future__ import annotations

from dataclasses import dataclass

from idrift import verdicts
from idrift.claims import REAL_ONLY, Claim, Expect
from idrift.evaluate.records import ClaimResult
from idrift.stats import Figure


@dataclass
class ExpectationOutcome:
    expect: Expect
    status: str  # PASS, FAIL, INCONCLUSIVE or NOT JUDGEABLE (idrift.verdicts)
    measured: float | None
    reason: str = ""
    figure: Figure | None = None

    @property
    def part(self) -> str:
        return verdicts.part_of(self.expect.metric)

    def line(self, claim_id: str) -> str:
        shown = "n/a" if self.measured is None else (self.figure.text() if self.figure else f"{self.measured:.4g}")
        return (f"{claim_id}: {self.expect} [{self.expect.why}] -> {self.status} (measured {shown})"
                f"{' - ' + self.reason if self.reason else ''}")


def figure_of(result: ClaimResult, metric: str) -> Figure | None:
    """The figure with its interval; a figure evaluate gave no interval (latency, say) has none."""
    if metric in result.intervals:
        return result.intervals[metric]
    value = result.figures.get(metric)
    return None if value is None else Figure(float(value))


def check_expectations(result: ClaimResult, profile: str, skip_reasons: dict[str, str]) -> list[ExpectationOutcome]:
    """Word each expectation by idrift.verdicts.decide; the ones this profile cannot judge are NOT
    JUDGEABLE with the reason."""
    outcomes = []
    for expect in result.claim.expectations:
        figure = figure_of(result, expect.metric)
        measured = None if figure is None else figure.value
        if profile not in expect.profiles:
            # Identity/LPIPS expectations (real only) get the profile's reason and what to provide.
            general = f"judged on the {' and '.join(expect.profiles)} profiles only"
            reason = (skip_reasons.get(profile) if expect.profiles == REAL_ONLY else None) or general
            outcomes.append(ExpectationOutcome(expect, verdicts.NOT_JUDGEABLE, measured, reason, figure))
            continue
        word, reason = verdicts.decide(expect.op, expect.value, figure)
        outcomes.append(ExpectationOutcome(expect, word, measured, reason, figure))
    return outcomes


def claim_verdict(claim: Claim, outcomes: list[ExpectationOutcome], tier: str | None = None,
                  require_real: bool = False) -> tuple[str, str, str]:
    """(word, parts, whether the tier can decide it): the worst part's word, each part's word
    ('structural PASS; identity NOT JUDGEABLE') and the simulation's power phrase ('' without a tier)."""
    word = verdicts.claim_word([o.status for o in outcomes], require_real)
    parts = verdicts.parts_text((o.part, o.status) for o in outcomes)
    decides = ""
    if tier is not None:
        from idrift.baselines.simulate import tier_decides

        decides = tier_decides(claim, tier)
    return word, parts, decides


def claim_line(claim: Claim, outcomes: list[ExpectationOutcome], tier: str | None = None,
               require_real: bool = False) -> str:
    """'figure5_drift: NOT JUDGEABLE (structural PASS; identity NOT JUDGEABLE); the smoke tier cannot decide it ...'"""
    word, parts, decides = claim_verdict(claim, outcomes, tier, require_real)
    return f"{claim.id}: {word} ({parts})" + (f"; {decides}" if decides else "")


def summary_lines(claim_id: str, outcomes: list[ExpectationOutcome], tier: str | None = None,
                  require_real: bool = False) -> list[str]:
    """What the terminal shows for a claim: its word with each part, each judged expectation on its
    own line, and the ones this profile cannot judge together on one line with the reason."""
    from idrift.claims import CLAIMS_BY_ID

    lines = [claim_line(CLAIMS_BY_ID[claim_id], outcomes, tier, require_real)] if claim_id in CLAIMS_BY_ID else []
    lines += [o.line(claim_id) for o in outcomes if o.status != verdicts.NOT_JUDGEABLE]
    skipped = [o for o in outcomes if o.status == verdicts.NOT_JUDGEABLE]
    if skipped:
        what = ", ".join(str(o.expect) for o in skipped)
        lines.append(f"{claim_id}: NOT JUDGEABLE {what} - {skipped[0].reason}")
    return lines
