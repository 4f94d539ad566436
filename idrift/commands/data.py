"""`idrift data ...`: build the identity sets the benchmarks generate from.

idrift data build-identities SRC --out MANIFEST [--backend arcface|dlib] [--n N] [--seed S]
idrift data builtin-identities --cache DIR
"""

from __future__ import annotations

from idrift.commands.identity import add_backend_arguments, backend_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="build identity sets (manifests of reference photos)", description=__doc__.splitlines()[0]
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    actions.required = True

    build = actions.add_parser(
        "build-identities",
        help="filter a folder of photos as the paper does and write a manifest",
        description="Keep photos with exactly one face of detector score > --min-score (weaker detections are not "
        "counted), face width > --min-face-width px "
        "and estimated age >= --min-age (age only with the arcface backend; recorded as not applied otherwise). "
        "Writes MANIFEST and MANIFEST's stem + .rejected.jsonl (one line per rejected file, with the reason).",
    )
    build.add_argument("src", metavar="SRC", help="folder of photos (searched recursively)")
    build.add_argument("--out", required=True, metavar="MANIFEST", help="manifest JSON to write")
    build.add_argument("--n", type=int, default=None, help="number of identities to choose (default: all that pass)")
    build.add_argument("--seed", type=int, default=0, help="seed of the choice (default 0)")
    build.add_argument("--min-score", type=float, default=None,
                       help="detector score must exceed this, on the backend's scale (default: 0.7 for arcface, the "
                            "paper's SCRFD confidence; 1.0 for dlib, its HOG SVM margin)")
    build.add_argument(
        "--min-face-width", type=float, default=80, help="face width in px must exceed this (default 80)"
    )
    build.add_argument("--min-age", type=float, default=18, help="estimated age must be at least this (default 18)")
    add_backend_arguments(build)
    build.set_defaults(func=run_build)

    builtin = actions.add_parser(
        "builtin-identities", help="materialise the built-in offline identity set and print its manifest path"
    )
    builtin.add_argument("--cache", required=True, metavar="DIR", help="folder to write the crops and manifest into")
    builtin.set_defaults(func=run_builtin)


def run_build(args) -> int:
    from idrift.data.identity_builder import build_identity_set

    backend = backend_from_args(args)
    manifest = build_identity_set(
        args.src,
        args.out,
        backend,
        n=args.n,
        seed=args.seed,
        min_score=args.min_score,
        min_face_width=args.min_face_width,
        min_age=args.min_age,
    )
    created = manifest.created_with
    counts = created["counts"]
    print(
        f"wrote {manifest.path}: {counts['chosen']} identities ({counts['passed_filters']} of {counts['files']} files "
        f"passed the filters; reasons for the {counts['rejected']} rejected in {created['rejection_log']})"
    )
    age = created["filters"]["min_age"]
    if not age["applied"]:
        print(f"note: age filter not applied: {age['why']}")
    return 0


def run_builtin(args) -> int:
    from idrift.data.identities import builtin_identity_set

    print(builtin_identity_set(args.cache))
    return 0
