"""Score a manifest's images into a scored folder: store, measure, judge, write results.json.

The steps, each through the code generated samples go through:
1. the references: read and their largest face found (idrift.scoring.ingest.load_identities);
2. the images: stored as samples with RunSpec.method set (ingest), every problem kept with its row;
3. the measurement: Runner.ensure on the stored samples (nothing generated, only missing metrics measured);
4. the claims that fit (idrift.scoring.claims) evaluated by idrift.evaluate and worded by idrift.verdicts;
5. DIR/results.json in the run directory's format plus the "scored" entry (idrift.scoring.folder).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from idrift.scoring.claims import SCORE_METRICS, build_claims, plan_arms
from idrift.scoring.folder import SCORED
from idrift.scoring.ingest import ingest, load_identities, require_rows

# Why a scoring profile cannot judge the identity and LPIPS expectations (idrift.evaluate.check_expectations).
SKIP_REASONS = {"tiny": "scored with --profile tiny (dlib, LPIPS of a random VGG: golden values for CI): identity "
                        "and LPIPS claims are judged with --profile real (antelopev2 ArcFace, VGG16 LPIPS)"}


def _never():
    from idrift.errors import IdriftError

    raise IdriftError("idrift score measures stored images and generates none, but a scored sample's image is "
                      "missing from the store: rerun `idrift score` (it stores the manifest's images again)")


def score_folder(session, manifest, out: Path, provenance: dict, args) -> dict:
    """Everything of `idrift score` after the options: returns the results.json document it wrote."""
    from idrift.errors import IdriftError
    from idrift.evaluate import arm_of, check_expectations, evaluate
    from idrift.run_folder import RUN_FORMAT, STORE_DIR, WARNINGS_LOG, claim_entry, now, write_results

    identities, bad_identities = load_identities(manifest, session.face_backend, args.identities)
    session.__dict__["provenance"] = provenance  # seeded: the session's own would fingerprint a model bundle
    session.__dict__["identities"] = identities
    session.context.pipeline_factory = _never  # scoring generates nothing
    ingested = ingest(manifest, session.store, session.profile, bad_identities, {"scored_from": str(manifest.path)})
    require_rows(ingested)
    print(f"idrift score: {len(ingested.specs)} of {manifest.n_rows} row(s) usable, {ingested.added} new or changed; "
          f"profile {session.profile}, backend {session.face_backend.name}, store {session.store.path}",
          file=sys.stderr)
    from idrift.held_warnings import held_warnings

    with held_warnings(out / WARNINGS_LOG):  # the metrics' warnings: logged, printed once at the end
        session.runner.ensure(ingested.specs, SCORE_METRICS, desc="score", progress=False)  # measures what is new

    budgets: dict[str, list[int]] = {}
    for spec in ingested.specs:
        budgets.setdefault(spec.method, [])
        if spec.steps not in budgets[spec.method]:
            budgets[spec.method].append(spec.steps)
    try:
        arms = plan_arms(budgets, args.reference)
    except ValueError as exc:
        raise IdriftError(str(exc)) from None
    scored = {"manifest": str(manifest.path.resolve()), "arms": arms, "n_rows": manifest.n_rows,
              "n_scored": len(ingested.specs),
              "identities": len({s.identity for s in ingested.specs}),
              "seeds": sorted({s.seed for s in ingested.specs}),
              "prompts": sorted({s.prompt_id for s in ingested.specs}),
              "rejected": [p.line() for p in sorted(ingested.problems, key=lambda p: p.row)]}
    claims = build_claims(arms, scored["identities"], scored["seeds"], scored["prompts"])
    doc = {"run_format": RUN_FORMAT, "command": shlex.join(["idrift", *sys.argv[1:]]), "started": now(),
           "finished": None, "complete": False,
           "options": {"profile": session.profile, "tier": "full", "claims": [c.id for c in claims],
                       "aggregation": session.options.aggregation, "require_real": False,
                       "strict": bool(args.strict), "identities": args.identities, "weights": {},
                       "acceleration": "eager"},
           "store": STORE_DIR, "provenance": provenance, "latency": {}, "claims": {}, SCORED: scored}
    for claim in claims:
        specs = [s for s in ingested.specs if arm_of(s.as_dict(), claim.arms) is not None]
        records = session.runner.ensure(specs, claim.metrics, desc=claim.id, progress=False)
        result = evaluate(claim, records, aggregation=session.options.aggregation)
        session.results[claim.id] = result
        session.outcomes[claim.id] = check_expectations(result, session.profile, SKIP_REASONS)
        doc["claims"][claim.id] = claim_entry(session, result, [s.key for s in specs])
    doc["complete"], doc["finished"] = True, now()
    write_results(out, doc)
    session.store.finish_run()
    return doc


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def summary(doc: dict) -> str:
    """Per method: images, detection rate, ID_sim, LPIPS; each claim's word and expectations; the bad rows."""
    from idrift.stats import Figure
    from idrift.verdicts import normalize

    scored = doc[SCORED]
    lines = [f"\nscored {scored['n_scored']} of {scored['n_rows']} row(s) of {scored['manifest']} "
             f"(profile {doc['options']['profile']})"]
    methods = doc["claims"].get("score_methods")
    if methods:
        figures, counts = methods["figures"], methods["samples"]
        lines.append(f"  {'method':24} {'n':>4} {'detected':>9} {'id_sim':>8} {'lpips':>8} {'clip_t':>8}")
        for name, _ in scored["arms"]["score_methods"]:
            n = len(counts.get(f"id_sim[{name}]", counts.get(f"lpips[{name}]", {})))
            lines.append(f"  {name:24} {n:>4} {_fmt(figures.get(f'detection_rate[{name}]')):>9} "
                         f"{_fmt(figures.get(f'id_sim[{name}]')):>8} {_fmt(figures.get(f'lpips[{name}]')):>8} "
                         f"{_fmt(figures.get(f'clip_t[{name}]')):>8}")
    for claim_id, entry in doc["claims"].items():
        lines.append(f"{entry['verdict']:13}  {claim_id}  {entry['title']}")
        for o in entry["expectations"]:
            measured = Figure.from_dict(o["figure"]).text() if o.get("figure") else _fmt(o["measured"])
            lines.append(f"{'':15}{normalize(o['status']):13}  {o['metric']} {o['op']} {o['value']:g}  "
                         f"(measured {measured})" + (f"  {o['reason']}" if o["reason"] else ""))
        lines += [f"{'':15}note: {n}" for n in entry["notes"]]
    if scored["rejected"]:
        lines.append(f"{len(scored['rejected'])} row(s) not scored:")
        lines += [f"  {line}" for line in scored["rejected"]]
    return "\n".join(lines)
