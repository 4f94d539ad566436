"""`idrift score MANIFEST --out DIR`: measure a folder of another identity method's images.

    idrift score pulid/manifest.csv --out scores/pulid --profile real --antelopev2 /models/antelopev2 --vgg16 ...
    idrift score both/manifest.csv --out scores/both --reference infiniteyou      # PuLID vs InfiniteYou
    idrift compare scores/both --baseline scores-h100.json;  idrift report scores/both

The manifest (CSV or JSON, docs/scoring.md) names each image's method, identity and reference
photograph, prompt, seed and optional step budget. Every image is stored in DIR/store as a sample whose
RunSpec names its method, and measured by the engine that measures generated samples (idrift.runner):
ID_sim on the largest face (the profile's backend, or --backend), the detection rate, LPIPS against the
reference, CLIP-T against the prompt. The claims that fit the data (idrift.scoring.claims: methods
paired by identity, prompt and seed; drift over step budgets) are judged by idrift.evaluate, and
DIR/results.json is a run directory's, so `idrift compare`, `idrift bless` and `idrift report` read DIR
as they read `idrift run --out`.

Bad rows (missing or unreadable image, unknown identity, duplicate, reference without a face, ...) are
listed with their row numbers and the rest is scored. A rerun measures only what is new: the store
keeps every scored sample. Exit status 1 when a row could not be scored or a claim FAILs.
"""

from __future__ import annotations

from pathlib import Path

from idrift.errors import IdriftError

PROFILES = ("tiny", "real")  # tiny: dlib and a random-VGG LPIPS (offline golden values); real: antelopev2 and VGG16
BACKENDS = ("arcface", "dlib")
WEIGHTS = ("antelopev2", "vgg16", "clip")  # the only weights scoring reads (idrift.models.paths.WEIGHT_OPTIONS)


def register(subparsers) -> None:
    from idrift.models.paths import OPTIONS_BY_FIELD

    parser = subparsers.add_parser(
        "score", help="measure another method's images (a manifest) and judge them like a run",
        description=__doc__.splitlines()[0],
        epilog="Rerunning the same command measures only rows not scored before (DIR/store keeps them).")
    parser.add_argument("manifest", metavar="MANIFEST",
                        help="CSV or JSON manifest of the images, or a folder holding manifest.csv (docs/scoring.md)")
    parser.add_argument("--out", required=True, metavar="DIR", help="scored folder (created; reused on a rerun)")
    parser.add_argument("--profile", choices=PROFILES, default="real",
                        help="real (default): antelopev2 ArcFace and VGG16 LPIPS, the paper's metrics; tiny: dlib "
                             "and a random-VGG LPIPS, offline (CI, the worked example)")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="face backend for ID_sim (default: the profile's, arcface on real, dlib on tiny)")
    parser.add_argument("--reference", metavar="METHOD", default=None,
                        help="the method the others are compared with (default: the manifest's first)")
    parser.add_argument("--identities", metavar="MANIFEST", default=None,
                        help="identity-set manifest giving references the rows leave empty")
    parser.add_argument("--aggregation", choices=("zero", "detected"), default="zero",
                        help="ID_sim of an image with no face: counts as 0 (zero, default) or is left out")
    parser.add_argument("--strict", action="store_true", help="exit 1 on INCONCLUSIVE claims too")
    for name in WEIGHTS:
        opt = OPTIONS_BY_FIELD[name]
        parser.add_argument(opt.cli_option, dest=opt.field, default=None, metavar="PATH",
                            help=f"{opt.help} [env {opt.env}]")
    parser.set_defaults(func=run)


def session_for(args, out: Path):
    """A BenchmarkSession that measures but never generates: its face backend, metrics and store are the
    session's lazy resources; its provenance is the scoring's (no model bundle is built)."""
    from idrift.run_folder import STORE_DIR
    from idrift.session import BenchmarkSession, SessionOptions

    session = BenchmarkSession(SessionOptions(
        profile=args.profile, tier="full", store=str(out / STORE_DIR), aggregation=args.aggregation,
        weights={name: getattr(args, name, None) for name in WEIGHTS}))
    backend = args.backend or ("arcface" if args.profile == "real" else "dlib")
    if backend != ("arcface" if args.profile == "real" else "dlib"):
        from idrift.faces import make_backend

        root = {"model_root": str(session.weight_paths.location("antelopev2"))} if backend == "arcface" else {}
        session.__dict__["face_backend"] = make_backend(backend, **root)
    return session


def provenance(session, manifest_path: Path) -> dict:
    """Where the numbers came from: the measuring code and the manifest (no generating model), assembled by
    idrift.provenance.run_provenance as a run's is."""
    from idrift.data.identities import sha256_file
    from idrift.metrics import REGISTRY
    from idrift.provenance import environment_provenance, run_provenance
    from idrift.scoring.claims import SCORE_METRICS

    return run_provenance(
        profile=session.profile, tier="full", aggregation=session.options.aggregation,
        environment=environment_provenance(session.device), weights={},
        acceleration=session.acceleration_provenance(),  # the eager path's: no pipeline is built for it
        face_backend=session.face_backend.provenance(),
        lpips=None if session.lpips_metric is None else session.lpips_metric.provenance(),
        metrics={name: metric.provenance() for name in REGISTRY if name in SCORE_METRICS
                 and (metric := session.registered_metric(name)) is not None},  # CLIP-T's model
        scored={"manifest": str(manifest_path.resolve()), "manifest_sha256": sha256_file(manifest_path)},
    )


def manifest_file(path: Path) -> Path:
    """MANIFEST as given; for a folder (the layout `idrift export` writes) its manifest.csv, else manifest.json."""
    if not path.is_dir():
        return path
    for name in ("manifest.csv", "manifest.json"):
        if (path / name).is_file():
            return path / name
    raise IdriftError(f"folder {path} holds no manifest.csv or manifest.json; write one (docs/scoring.md)")


def run(args) -> int:
    from idrift.scoring.manifest import load_score_manifest

    manifest_path = manifest_file(Path(args.manifest))
    manifest = load_score_manifest(manifest_path)  # a bad manifest fails before any model loads
    methods = list(dict.fromkeys(row.method for row in manifest.rows))
    if args.reference is not None and args.reference not in methods:
        raise IdriftError(f"--reference {args.reference!r} is not a method of {manifest_path} "
                          f"(it has {', '.join(methods) or 'no usable row'})")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise IdriftError(f"--out {out} exists and is not a directory; give a directory path")
    out.mkdir(parents=True, exist_ok=True)
    session = session_for(args, out)
    from idrift.scoring.score import score_folder

    doc = score_folder(session, manifest, out, provenance(session, manifest_path), args)
    from idrift.scoring.score import summary

    print(summary(doc))
    from idrift.verdicts import exit_status

    words = [entry["verdict"] for entry in doc["claims"].values()]
    return 1 if doc["scored"]["rejected"] else exit_status(words, strict=args.strict)
