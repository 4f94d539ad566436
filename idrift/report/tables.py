"""The report's tables: the paper's Tables 1-2 with the run's value, interval and n beside the paper's
number and a caveat column where the profile makes a column meaningless; the claims' words; every
number of baselines/paper.json against the run (the rows of `idrift compare RUN --baseline paper`)."""

from __future__ import annotations

from idrift.report.captions import RANDOM_PROFILES
from idrift.report.data import EVAL_PROMPTS, PAPER_BASELINE, MissingData, RunData
from idrift.stats import CONFIDENCE, Figure

SWAP, DEV4, LATENCY, BY_PROMPT = "table1_backbone_swap", "table1_dev4_diagnostic", "latency", "table2_id_sim_by_prompt"


def cell(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def signed(value) -> str:
    return "-" if value is None else f"{value:+.4g}"


def measured(figure: Figure | None, digits: int = 4, sign: bool = False) -> str:
    """'0.61 [0.58, 0.64]': the run's value and its interval; 'not measured' where the run lacks it."""
    if figure is None:
        return "not measured"
    value = f"{figure.value:+.{digits}g}" if sign else f"{figure.value:.{digits}g}"
    if figure.ci is None:
        return f"{value} (no interval)"
    return f"{value} [{figure.ci[0]:.{digits}g}, {figure.ci[1]:.{digits}g}]"


def _size(data: RunData) -> str:
    """The size LPIPS compared images at: the run's LPIPS provenance, else the first sample's spec."""
    size = (data.run.provenance.get("lpips") or {}).get("size")
    if size:
        return f"{size[0]}x{size[1]} px"
    for claim_id in (SWAP, BY_PROMPT, DEV4):
        try:
            spec = data.records(claim_id)[0]["spec"] if data.has(claim_id) else {}
        except (IndexError, MissingData):
            continue
        if "width" in spec:
            return f"{spec['width']}x{spec['height']} px"
    return "this profile's size"


def caveats(data: RunData) -> dict[str, tuple[str, str]]:
    """column -> (short cell text, full reason) where this profile makes the column meaningless
    (none on the real profile)."""
    profile = data.profile
    out = {}
    if profile in RANDOM_PROFILES:
        faceless = data.faceless(SWAP, DEV4, BY_PROMPT)
        out["ID_sim"] = ("no faces: 0" if faceless else "random weights",
                         "random weights: no identity to preserve" + (
                             "; no generated image has a face, so every ID_sim is 0 by the aggregation rule"
                             if faceless else ""))
    if profile == "tiny":
        out["LPIPS"] = ("random VGG", f"LPIPS from a random VGG backbone (pnet_rand) on {_size(data)} toy images")
        out["latency"] = ("CPU", "CPU seconds of toy models: nothing about a GPU's latency or speed-up")
    elif profile == "synthetic":
        out["LPIPS"] = ("random weights", "random weights: the images carry no content to compare")
    return out


def caveat_notes(data: RunData) -> list[str]:
    """The full reasons behind the caveat column, one line each, for under the tables."""
    return [f"- caveat, {column}: {why}" for column, (_, why) in caveats(data).items()]


def _n(data: RunData, claim_id: str, metric: str) -> str:
    figure = data.interval(claim_id, metric)
    return f" (n={figure.n})" if figure is not None and figure.n else ""


def table1(data: RunData) -> list[str]:
    """Paper Table 1 with the run's numbers, intervals and n beside the paper's."""
    p, i = data.paper_value, data.interval
    caveat = "; ".join(f"{col}: {short}" for col, (short, _) in caveats(data).items()) or "-"
    rows = (("FLUX.1-dev, 28 steps", SWAP, "dev-28", True), ("FLUX.1-schnell, 4 steps", SWAP, "schnell-4", True),
            ("FLUX.1-dev, 4 steps (diagnostic)", DEV4, "dev-4", False))
    lines = [f"| method | ID_sim paper | ID_sim run [{CONFIDENCE:.0%} CI] | LPIPS paper | LPIPS run [CI] | "
             "latency s paper | latency s run [CI] | caveat |", "|---|---|---|---|---|---|---|---|"]
    for label, claim_id, arm, has_lpips in rows:
        lpips = measured(i(claim_id, f"lpips[{arm}]")) if has_lpips else "not measured (paper: none)"
        lines.append(f"| {label}{_n(data, claim_id, f'id_sim[{arm}]')} | {cell(p(claim_id, f'id_sim[{arm}]'))} | "
                     f"{measured(i(claim_id, f'id_sim[{arm}]'))} | {cell(p(SWAP, f'lpips[{arm}]'))} | {lpips} | "
                     f"{cell(p(LATENCY, f'latency_s[{arm}]'))} | {measured(i(LATENCY, f'latency_s[{arm}]'), 3)} | "
                     f"{caveat} |")
    lines.append(f"| schnell-4 minus dev-28 | {signed(p(SWAP, 'id_sim_delta'))} | "
                 f"{measured(i(SWAP, 'id_sim_delta'), sign=True)} | {signed(p(SWAP, 'lpips_delta'))} | "
                 f"{measured(i(SWAP, 'lpips_delta'), sign=True)} | speed-up {cell(p(LATENCY, 'speedup'), 3)}x | "
                 f"speed-up {measured(i(LATENCY, 'speedup'), 3)}x | {caveat} |")
    return lines


def table2(data: RunData) -> list[str]:
    """Paper Table 2: ID_sim per evaluation prompt, with the run's intervals."""
    p, i = data.paper_value, data.interval
    caveat = caveats(data).get("ID_sim", ("-", ""))[0]
    lines = [f"| prompt | dev-28 paper | dev-28 run [{CONFIDENCE:.0%} CI] | schnell-4 paper | schnell-4 run [CI] | "
             "gain paper | gain run [CI] | caveat |", "|---|---|---|---|---|---|---|---|"]
    for prompt in EVAL_PROMPTS:
        lines.append(
            f"| {prompt}{_n(data, BY_PROMPT, f'delta[{prompt}]')} | {cell(p(BY_PROMPT, f'id_sim[dev-28|{prompt}]'))} | "
            f"{measured(i(BY_PROMPT, f'id_sim[dev-28|{prompt}]'))} | "
            f"{cell(p(BY_PROMPT, f'id_sim[schnell-4|{prompt}]'))} | "
            f"{measured(i(BY_PROMPT, f'id_sim[schnell-4|{prompt}]'))} | "
            f"{signed(p(BY_PROMPT, f'delta[{prompt}]'))} | {measured(i(BY_PROMPT, f'delta[{prompt}]'), sign=True)} | "
            f"{caveat} |")
    lines.append(f"| average (Table 1's samples){_n(data, SWAP, 'id_sim_delta')} | {cell(p(SWAP, 'id_sim[dev-28]'))} | "
                 f"{measured(i(SWAP, 'id_sim[dev-28]'))} | {cell(p(SWAP, 'id_sim[schnell-4]'))} | "
                 f"{measured(i(SWAP, 'id_sim[schnell-4]'))} | {signed(p(SWAP, 'id_sim_delta'))} | "
                 f"{measured(i(SWAP, 'id_sim_delta'), sign=True)} | {caveat} |")
    return lines


def paper_session(data: RunData):
    """The run as `idrift compare RUN --baseline paper` sees it: the same session, outcomes and gate rows."""
    from idrift.session import BenchmarkSession

    return BenchmarkSession.from_run(data.run, baseline=str(data.paper.path or PAPER_BASELINE), results=data.results)


def claims_section(data: RunData, session) -> list[str]:
    """Each claim's word, its parts and expectations: idrift.evaluate.claim_line, as pytest, `idrift run`
    and `idrift compare` print it."""
    from idrift import verdicts
    from idrift.evaluate import claim_line

    lines = ["| claim | paper | verdict | expectations (measured, 95% CI, n) |", "|---|---|---|---|"]
    require_real = data.run.doc["options"].get("require_real", False)
    reasons: dict[str, int] = {}
    for claim in data.run.claims:
        outcomes = session.outcomes.get(claim.id, [])
        parts = []
        for o in outcomes:
            measured = "n/a" if o.measured is None else (o.figure.text() if o.figure else f"{o.measured:.4g}")
            part = f"{o.expect}: {o.status} ({measured})"
            if o.status == verdicts.NOT_JUDGEABLE:
                part += f" [{reasons.setdefault(o.reason, len(reasons) + 1)}]"
            elif o.reason:
                part += f" - {o.reason}"
            parts.append(part)
        line = claim_line(claim, outcomes, data.run.tier, require_real).split(": ", 1)[1]
        expectations = "<br>".join(parts).replace("|", "/")
        lines.append(f"| {claim.id} | {claim.paper} | {line.replace('|', '/')} | {expectations} |")
    if reasons:
        lines += [""] + [f"[{n}] not judgeable: {reason}" for reason, n in reasons.items()]
    return lines


def paper_section(rows: list[dict], paper) -> list[str]:
    """Every number of baselines/paper.json: the run's value with its interval and n, whether the paper's
    number lies inside that interval, and the gate's word (the rows of `idrift compare --baseline paper`)."""
    lines = [f"| claim | number | paper | run | run {CONFIDENCE:.0%} CI | n (run) | paper inside | word |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] == "no baseline":
            continue
        low, high = r.get("candidate_ci_low"), r.get("candidate_ci_high")
        ci = "-" if low is None else f"[{cell(low)}, {cell(high)}]"
        inside = {True: "yes", False: "no", None: "-"}[r.get("baseline_inside")]
        n = "-" if r.get("candidate_n") is None else str(r["candidate_n"])
        lines.append(f"| {r['claim']} | {r['metric'].replace('|', '/')} | {cell(r['baseline'])} | "
                     f"{cell(r['candidate'])} | {ci} | {n} | {inside} | {r['status']} |")
    measured = {r["claim"] for r in rows}
    for claim_id, claim in paper.claims.items():
        if claim_id not in measured:
            lines += [f"| {claim_id} | {metric.replace('|', '/')} | {cell(m.aggregate)} | - | - | - | - | "
                      "not in this run |" for metric, m in sorted(claim.metrics.items())]
    return lines
