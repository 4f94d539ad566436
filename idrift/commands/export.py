"""`idrift export RUN_DIR FOLDER`: write a run's samples as another method's folder plus manifest.

    idrift export runs/ci exported/ && idrift score exported/manifest.csv --profile tiny --out scores/ci

The folder is what `idrift score` reads (docs/scoring.md): images by method, the references, and
manifest.csv. Scoring it with the run's profile gives the run's per-sample values.
"""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a run's images as a method folder and manifest",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `idrift run --out`")
    parser.add_argument("folder", metavar="FOLDER",
                        help="folder to write (created): images/, references/, manifest.csv")
    parser.add_argument("--claims", default=None, metavar="ID,...",
                        help="only the samples of these claims (default: every claim but latency)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from idrift.scoring.export import export_run

    claims = [c.strip() for c in args.claims.split(",") if c.strip()] if args.claims else None
    manifest, n = export_run(args.run_dir, args.folder, claims)
    print(f"wrote {n} image(s) and {manifest}")
    return 0
