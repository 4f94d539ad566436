"""`idrift run`: run the paper's claims outside pytest and write a run directory.

    idrift run --profile tiny --claims figure5_guidance,table1_backbone_swap --out runs/ci
    idrift run --profile real --tier full --claims all --out runs/h100 --flux-dev /models/FLUX.1-dev ...
    idrift run --profile real --accelerate lossless --step-cache 0.12 --out runs/fbc ...   # labelled lossy

A run directory holds
    results.json   per claim: figures, per-sample values, expectation outcomes, notes, provenance,
                   the spec keys of its samples; the latency timings; the options of the run
    store/         the results store (SQLite + one PNG per sample) the figures were computed from
    warnings.log   the warnings of the run (printed once, after the progress bars, not through them)

Generation goes through the same BenchmarkSession as `pytest benchmarks`. A run interrupted with
Ctrl-C keeps every finished sample in the store, and results.json holds the claims finished so far;
rerunning the same command resumes where it stopped. `idrift compare`, `idrift bless` and
`idrift report` read a run directory through idrift.run_folder.load_run.

This module is imported by every `idrift` invocation (the dispatcher registers all commands), so
its top level imports nothing heavy: torch and the models load only when a run starts.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from idrift.claims import CLAIMS, CLAIMS_BY_ID, FAMILIES, Claim, get_claims
from idrift.config import PROFILES
from idrift.errors import IdriftError
from idrift.models.paths import INFU_VARIANTS, WEIGHT_OPTIONS
from idrift.run_folder import (
    RESULTS_FILE,
    RUN_FORMAT,
    STORE_DIR,
    WARNINGS_LOG,
    any_failed,
    claim_entry,
    entry_verdict,
    now,
    unreadable_results_advice,
    write_results,
)
from idrift.verdicts import NOT_JUDGEABLE, normalize, part_of, parts_text


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run claims (generate, measure, evaluate) and write a run directory",
        description=__doc__.splitlines()[0],
        epilog="Rerunning the same command resumes an interrupted run: finished samples are reused from OUT/store.")
    parser.add_argument("--profile", choices=PROFILES, default="tiny",
                        help="tiny (random, CPU), synthetic (random, real size, GPU) or real (weights). Default tiny")
    parser.add_argument("--claims", default="all", metavar="NAME,...",
                        help="claim ids or families, comma separated, or 'all' (default). "
                             f"Claims: {', '.join(CLAIMS_BY_ID)}; families: {', '.join(FAMILIES)}")
    parser.add_argument("--tier", choices=("smoke", "full"), default="smoke",
                        help="smoke: a few identities x prompts; full: the paper's grids. Default smoke")
    parser.add_argument("--out", required=True, metavar="DIR", help="run directory (created; reused to resume)")
    parser.add_argument("--identities", metavar="MANIFEST", default=None,
                        help="identity-set manifest (default: the built-in offline set)")
    parser.add_argument("--aggregation", choices=("zero", "detected"), default="zero",
                        help="ID_sim of a generated image with no face: counts as 0 (zero, default) or is left out")
    parser.add_argument("--require-real", action="store_true",
                        help="count expectations this profile cannot judge as failures (GPU CI)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 on INCONCLUSIVE claims too (their interval straddles the bound)")
    from idrift.config import ACCELERATE_MODES, MEMORY_MODES, step_cache_threshold

    parser.add_argument("--accelerate", choices=ACCELERATE_MODES, default="eager",
                        help="eager (reference path, default); lossless: compiled blocks, cuDNN attention, VAE "
                             "channels_last (not compiled on a CPU); lossy: lossless plus fp8 matmuls (CUDA sm_89+) "
                             "[pytest --idrift-accelerate]")
    parser.add_argument("--step-cache", type=step_cache_threshold, default=None, metavar="THRESHOLD",
                        help="First-Block-Cache with this threshold, e.g. 0.12: skips backbone work on similar "
                             "steps. LOSSY. Default off [pytest --idrift-step-cache]")
    parser.add_argument("--memory", choices=MEMORY_MODES, default="off",
                        help="off (default); offload: one resident backbone, text encoders offloaded (lossless); "
                             "offload-8bit: also 8-bit block weights (LOSSY) [pytest --idrift-memory]")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="generate up to N samples that differ only in the seed as one batch (default 1) "
                             "[pytest --idrift-batch-size]")
    parser.add_argument("--lora", action="append", default=[], metavar="PATH[:SCALE]",
                        help="load this FLUX LoRA on the backbones (repeatable; SCALE default 1), as InfiniteYou's "
                             "load_loras does; part of every sample's key [pytest --idrift-lora]")
    parser.add_argument("--rounds", type=int, default=None, metavar="N",
                        help="timed rounds per latency arm after warm-up (default: 10 on CUDA, 2 on the CPU) "
                             "[pytest --idrift-rounds]")
    parser.add_argument("--warmup-rounds", type=warmup_count, default=None, metavar="N",
                        help="untimed warm-up rounds per latency arm (default: 2 on CUDA, 1 on the CPU) "
                             "[pytest --idrift-warmup-rounds]")
    for opt in WEIGHT_OPTIONS:
        kwargs = {"choices": INFU_VARIANTS} if opt.field == "infu_variant" else {"metavar": "PATH"}
        parser.add_argument(opt.cli_option, dest=opt.field, default=None,
                            help=f"{opt.help} [env {opt.env}; pytest {opt.option}]", **kwargs)
    parser.set_defaults(func=run)


def warmup_count(text: str) -> int:
    """--warmup-rounds: a whole number >= 0 (argparse type; 0 times from the first call)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


# ---------------------------------------------------------------------------------------------- claims


def resolve_claims(text: str) -> list[Claim]:
    """'all', family names or claim ids (comma separated) -> claims, in the paper's order: figures
    6-7 pick their top identities from the ID_sim that the backbone-swap claims measured first."""
    if not text.strip(" ,"):
        raise IdriftError("--claims is empty; give claim ids, families or 'all'")
    wanted = {claim.id for claim in get_claims(text)}  # an unknown name is an IdriftError listing the known ones
    return [claim for claim in CLAIMS if claim.id in wanted]


# ------------------------------------------------------------------------------------------------- run


def run(args) -> int:
    claims = resolve_claims(args.claims)  # before any model loads: a typo fails in a second
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise IdriftError(f"--out {out} exists and is not a directory; give a directory path")
    if args.identities is not None and not Path(args.identities).is_file():
        raise IdriftError(f"--identities {args.identities}: no such file; give an identity manifest "
                          "(build one with `idrift data build-identities`)")
    from idrift.session import BenchmarkSession, SessionOptions

    options = SessionOptions(
        profile=args.profile, tier=args.tier, store=str(out / STORE_DIR), identities=args.identities,
        aggregation=args.aggregation, require_real=args.require_real,
        weights={opt.field: getattr(args, opt.field, None) for opt in WEIGHT_OPTIONS},
        accelerate=args.accelerate, step_cache=args.step_cache, memory=args.memory, batch_size=args.batch_size,
        loras=tuple(args.lora), command="idrift run", rounds=getattr(args, "rounds", None),
        warmup_rounds=getattr(args, "warmup_rounds", None),
    )
    session = BenchmarkSession(options)  # builds nothing yet
    session.check_acceleration()  # e.g. lossy on a CPU: one line, before any model loads
    from idrift.checks import check_inputs

    check_inputs(session, baseline=False)  # manifest, --out writable, a GPU for synthetic, every weight on real
    out.mkdir(parents=True, exist_ok=True)
    doc = new_results(session, claims)
    doc["options"]["strict"] = bool(args.strict)
    carry_over(out, doc)  # before any model loads: a clash with an earlier run fails at once
    doc["provenance"] = session.provenance
    print(f"idrift run: profile {session.profile}, tier {options.tier}, {len(claims)} claim(s), "
          f"store {session.store.path}", file=sys.stderr)
    if session.acceleration_line():
        print(f"idrift run: {session.acceleration_line()}", file=sys.stderr)
    from idrift.held_warnings import held_warnings

    with held_warnings(out / WARNINGS_LOG):  # no warning breaks a bar: logged, then printed once after them
        for claim in claims:
            if "latency" in claim.metrics:  # timed arms: their rounds go into the store with their samples
                time_latency_arms(session, claim)
            # The progress bar (samples done, rate, ETA, current spec) is Runner.ensure's.
            result = session.run_claim(claim, progress=True)
            doc["claims"][claim.id] = claim_entry(session, result, session.spec_keys[claim.id])
            doc["latency"].update(session.latency)
            write_results(out, doc)  # after every claim: an interrupted run keeps what it finished
    doc["complete"] = True
    doc["finished"] = now()
    path = write_results(out, doc)
    session.store.finish_run()

    print(summary(doc))
    print(f"\nresults: {path}")
    return 1 if any_failed(doc) else 0


def time_latency_arms(session, claim: Claim) -> None:
    """Seconds per image of each of the claim's arms, warm-up excluded: BenchmarkSession.time_arm, the
    timer the pytest path uses (idrift.metrics.latency.time_rounds, here without pytest-benchmark). The
    rounds are stored with each arm's sample, so run_claim reads them from the store as pytest does. An
    arm whose path this device cannot take is left out, saying why (its figures are then not measured)."""
    warmup_rounds, rounds = session.latency_rounds()
    for arm in claim.arms:
        reason = session.plan_reason(arm.acceleration)
        if reason is not None:
            print(f"latency: not timing {arm.name}: {reason}", file=sys.stderr)
            continue
        if session.is_timed(arm):  # an arm latency and fast_paths share: timed once
            print(f"latency: {arm.name} was timed earlier in this run; its rounds serve {claim.id} too",
                  file=sys.stderr)
        else:
            print(f"latency: timing {arm.name} ({rounds} rounds after {warmup_rounds} warm-up)", file=sys.stderr)
        session.time_arm(arm)


# ------------------------------------------------------------------------------------------ results.json


def new_results(session, claims: list[Claim]) -> dict:
    return {
        "run_format": RUN_FORMAT,
        "command": shlex.join(["idrift", *sys.argv[1:]]),  # what to rerun to resume
        "started": now(),
        "finished": None,
        "complete": False,
        "options": {
            "profile": session.profile, "tier": session.options.tier, "claims": [c.id for c in claims],
            "aggregation": session.options.aggregation, "require_real": session.options.require_real,
            "strict": bool(getattr(session.options, "strict", False)),
            "identities": identities_manifest(session),
            "weights": {k: v for k, v in session.options.weights.items() if v is not None},
            "acceleration": session.options.plan.label,  # RunSpec.acceleration of every session-wide arm
        },
        "store": STORE_DIR,
        "provenance": None,  # filled after carry_over: taking it builds the models it fingerprints
        "latency": {},
        "claims": {},
    }


# What must match for claims of an earlier run in the same directory to stand beside this run's.
SAME_RUN_OPTIONS = ("profile", "tier", "aggregation", "identities", "weights", "acceleration")
# An option a results.json written before it existed lacks, and what that run used.
OPTION_DEFAULTS = {"acceleration": "eager"}


def carry_over(out: Path, doc: dict) -> None:
    """Keep the claims an earlier run in `out` finished and this one does not rerun, so that
    `idrift run --claims X --out DIR` adds X to a run directory (their samples share DIR/store).
    A directory holding a run of other options is refused: one results.json describes one setup."""
    path = out / RESULTS_FILE
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous.get("run_format") != RUN_FORMAT:
            raise ValueError(f"run_format {previous.get('run_format')!r}")
    except (OSError, ValueError) as exc:
        raise IdriftError(f"{path} cannot be read ({exc}); {unreadable_results_advice(out)}") from None
    before = {k: previous["options"].get(k, OPTION_DEFAULTS.get(k)) for k in SAME_RUN_OPTIONS}
    differing = [k for k in SAME_RUN_OPTIONS if before[k] != doc["options"].get(k)]
    if differing:
        shown = ", ".join(f"{k} {before[k]!r} there, {doc['options'].get(k)!r} here" for k in differing)
        raise IdriftError(f"--out {out} holds a run with other options ({shown}); choose another --out")
    kept = [c for c in previous["claims"] if c not in doc["options"]["claims"] and c in CLAIMS_BY_ID]
    for claim_id in kept:
        doc["claims"][claim_id] = previous["claims"][claim_id]
    if "latency" not in doc["options"]["claims"]:
        doc["latency"] = previous.get("latency") or {}
    doc["options"]["claims"] = [c.id for c in CLAIMS if c.id in doc["claims"] or c.id in doc["options"]["claims"]]
    if kept:
        print(f"keeping {len(kept)} claim(s) finished earlier in {out}: {', '.join(kept)}", file=sys.stderr)


def identities_manifest(session) -> str | None:
    """The manifest the references came from (the report's image grid shows them); None on synthetic."""
    if session.profile == "synthetic":
        return None
    if session.options.identities:
        return str(Path(session.options.identities).resolve())
    from idrift.data.identities import builtin_identity_set

    return str(Path(builtin_identity_set(session.cache_dir)).resolve())


# ------------------------------------------------------------------------------------------- summary

SUMMARY_WIDTH = 30  # claim-id column


def key_figures(entry: dict) -> dict[str, float]:
    """What the one-screen summary shows: the figures the expectations judge, and the latencies."""
    figures = entry["figures"]
    keys = [o["metric"] for o in entry["expectations"]]
    keys += [k for k in sorted(figures) if k.startswith("latency_s[")]
    return {k: figures[k] for k in dict.fromkeys(keys) if k in figures}


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def no_faces(entry: dict) -> bool:
    """True when ID_sim was measured but no generated image had a face (every detection rate 0)."""
    rates = [v for k, v in entry["figures"].items() if k.startswith("detection_rate[")]
    return bool(rates) and max(rates) == 0.0


def summary(doc: dict) -> str:
    from idrift.stats import Figure

    require_real = doc["options"].get("require_real", False)
    incomplete = "" if doc["complete"] else " (INCOMPLETE: rerun the same command to resume)"
    lines = [f"\nprofile {doc['options']['profile']}, tier {doc['options']['tier']}{incomplete}"]
    acceleration = doc["options"].get("acceleration", "eager")
    if acceleration != "eager":  # a lossy run is visibly labelled
        lossy = ": LOSSY, numbers deviate from the reference path" if "lossy" in acceleration else ""
        lines.append(f"acceleration {acceleration}{lossy}")
    reasons: dict[str, int] = {}
    for claim_id in [c.id for c in CLAIMS if c.id in doc["claims"]]:
        entry = doc["claims"][claim_id]
        shown = "  ".join(f"{k}={_fmt(v)}" for k, v in key_figures(entry).items()) or "(no figures)"
        word = entry_verdict(entry, require_real)
        lines.append(f"{word:13}  {claim_id:{SUMMARY_WIDTH}} {shown}")
        parts = parts_text((o.get("part") or part_of(o["metric"]), o["status"]) for o in entry["expectations"])
        lines.append(f"{'':15}{parts}" + (f"; {entry['verdict_tier']}" if entry.get("verdict_tier") else ""))
        for o in entry["expectations"]:
            expect = f"{o['metric']} {o['op']} {o['value']:g}"
            word = normalize(o["status"])
            measured = Figure.from_dict(o["figure"]).text() if o.get("figure") else _fmt(o["measured"])
            line = f"{'':15}{word:13}  {expect}  (measured {measured})"
            if word == NOT_JUDGEABLE:
                number = reasons.setdefault(o["reason"], len(reasons) + 1)
                line += f"  reason [{number}]"
            elif o["reason"]:
                line += f"  {o['reason']}"
            lines.append(line)
        if entry["n_failed"]:
            lines.append(f"{'':15}{entry['n_failed']} of {entry['n_records']} samples failed (see the store)")
        if no_faces(entry):
            lines.append(f"{'':15}no generated image has a face: ID_sim is 0 by the aggregation rule")
    if reasons:
        lines.append("not judgeable because:")
        lines += [f"  [{n}] {reason}" for reason, n in reasons.items()]
        if require_real:
            lines.append("--require-real: a NOT JUDGEABLE expectation counts as a failure")
    if doc["options"].get("strict"):
        lines.append("--strict: an INCONCLUSIVE claim counts as a failure")
    return "\n".join(lines)


