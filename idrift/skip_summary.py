"""Every skip says why in pytest's default output: one line per reason with its count, not one per test.

pytest prints skip reasons only under `-rs` (or `-ra`); without them a run of 29 skips says "29 skipped"
and nothing else. This plugin (registered by idrift.pytest_plugin) adds a short section instead:

    ============================ idrift skips ============================
    22 skipped: speed-ups are measured at real sizes on a GPU (...)
    4 skipped (table1_backbone_swap, table2_id_sim_by_prompt, ...): tiny random models make no faces: ...

A claim's skip reads "claim_id: reason"; claims that share the reason share its line, named before it.

When `-rs`/`-ra` already lists them, it prints nothing (pytest's own list names the lines).
"""

from __future__ import annotations

import re

_CLAIM_PREFIX = re.compile(r"^([a-z][a-z0-9_]*): (.+)$", re.DOTALL)  # "table1_backbone_swap: reason"


def skip_reason(report) -> str:
    """The reason of a skipped test report ('Skipped: ' dropped)."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text[len("Skipped: "):] if text.startswith("Skipped: ") else text


def skip_lines(reports) -> list[str]:
    """'N skipped: reason' per distinct reason ('N skipped (claims): reason' where claims share it), most
    frequent first, ties in first-seen order."""
    counts: dict[str, int] = {}
    claims: dict[str, list[str]] = {}
    for report in reports:
        reason = skip_reason(report)
        match = _CLAIM_PREFIX.match(reason)
        if match:
            reason = match.group(2)
            if match.group(1) not in claims.setdefault(reason, []):
                claims[reason].append(match.group(1))
        counts[reason] = counts.get(reason, 0) + 1
    order = {reason: i for i, reason in enumerate(counts)}
    out = []
    for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], order[kv[0]])):
        named = claims.get(reason)
        out.append(f"{n} skipped" + (f" ({', '.join(named)})" if named else "") + f": {reason}")
    return out


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if "s" in getattr(terminalreporter, "reportchars", ""):
        return  # -rs / -ra: pytest lists them itself
    reports = [r for r in terminalreporter.stats.get("skipped", []) if getattr(r, "longrepr", None) is not None]
    if not reports:
        return
    terminalreporter.section("idrift skips")
    for line in skip_lines(reports):
        terminalreporter.write_line(line)
