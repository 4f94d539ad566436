"""A gate's verdict (the record every gate returns) and the one rule every gate decides it by.

The rule, on an interval of (candidate - baseline) and the tolerance margin (`fails`):

    higher_is_better: hi < -margin        lower_is_better: lo > +margin
    equal:            lo > +margin or hi < -margin   (two-sided; margin 0 with samples = exact match)

Kept free of scipy, so that formatting a verdict's numbers (`format_number`) stays cheap to import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from idrift.baselines.schema import DIRECTIONS, TOLERANCE_KINDS

STATUSES = ("pass", "fail", "insufficient", "not comparable", "not judgeable", "not informative")


def format_number(x, digits: int = 6) -> str:
    """A figure for messages and tables: '-' for missing, nan/inf as such, else `digits` significant."""
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


_num = format_number


@dataclass
class Verdict:
    claim: str
    metric: str
    status: str  # one of STATUSES
    baseline: float | None  # baseline value (mean over the pairs used, or the aggregate)
    candidate: float | None
    difference: float | None  # candidate - baseline
    interval: tuple[float, float] | None  # interval of the difference
    tolerance: float
    direction: str
    n: int | None  # pairs (after averaging seeds) or independent units behind the candidate
    notes: list[str] = field(default_factory=list)
    tolerance_kind: str = "absolute"
    margin: float | None = None  # the tolerance in the metric's units (relative x |baseline|)
    method: str = ""  # how the interval was made
    missing_in_candidate: list[str] = field(default_factory=list)  # baseline keys the run lacks
    missing_in_baseline: list[str] = field(default_factory=list)  # run keys the baseline lacks
    baseline_n: int | None = None  # the n the baseline states (the paper's 84), never the run's

    @property
    def word(self) -> str:
        """PASS, FAIL, INCONCLUSIVE or NOT JUDGEABLE: idrift.verdicts.gate_word, the one rule."""
        from idrift.verdicts import gate_word

        return gate_word(self)

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def rule(self) -> str:
        m = _num(self.margin if self.margin is not None else self.tolerance)
        if self.direction == "higher_is_better":
            return f"fails when the interval lies entirely below -{m}"
        if self.direction == "lower_is_better":
            return f"fails when the interval lies entirely above +{m}"
        if self.margin == 0 and self.method.startswith("exact"):
            return "fails on any difference (exact golden values)"
        return f"fails when the interval lies entirely outside [-{m}, +{m}]"

    def message(self) -> str:
        """What a failing test prints: claim, baseline, candidate, difference, interval, tolerance."""
        if self.tolerance_kind == "relative":
            tol = f"{self.tolerance * 100:g}% relative (= {_num(self.margin)})"
        else:
            tol = f"{_num(self.tolerance)} absolute"
        interval = "-" if self.interval is None else f"[{_num(self.interval[0])}, {_num(self.interval[1])}]"
        baseline_n = f"  (n={self.baseline_n})" if self.baseline_n is not None else ""
        lines = [
            f"{self.word}: {self.claim} / {self.metric}",
            f"  baseline    {_num(self.baseline)}" + baseline_n,
            f"  candidate   {_num(self.candidate)}" + (f"  (n={self.n})" if self.n is not None else ""),
            f"  difference  {_num(self.difference)}  (candidate - baseline)",
            f"  interval    {interval}" + (f"  {self.method}" if self.method else ""),
            f"  tolerance   {tol}, {self.direction}: {self.rule()}",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def as_row(self) -> dict:
        lo, hi = self.interval if self.interval is not None else (None, None)
        return {
            "claim": self.claim,
            "metric": self.metric,
            "status": self.status,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "difference": self.difference,
            "ci_low": lo,
            "ci_high": hi,
            "tolerance": self.tolerance,
            "tolerance_kind": self.tolerance_kind,
            "margin": self.margin,
            "direction": self.direction,
            "n": self.n,
            "baseline_n": self.baseline_n,
            "method": self.method,
            "notes": "; ".join(self.notes),
        }


def check_rule(tolerance: float, direction: str, tolerance_kind: str) -> None:
    """Refuse a rule the gates cannot apply: an unknown direction or tolerance kind, a bad tolerance."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if tolerance_kind not in TOLERANCE_KINDS:
        raise ValueError(f"tolerance_kind must be one of {TOLERANCE_KINDS}, got {tolerance_kind!r}")
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")


def tolerance_margin(tolerance: float, tolerance_kind: str, baseline_value: float) -> float:
    """The tolerance in the metric's units."""
    return tolerance * abs(baseline_value) if tolerance_kind == "relative" else tolerance


def fails(lo, hi, margin: float, direction: str):
    """The gate's rule on an interval of (candidate - baseline). Works on arrays (the simulation)."""
    if direction == "higher_is_better":
        return hi < -margin
    if direction == "lower_is_better":
        return lo > margin
    return (lo > margin) | (hi < -margin)
