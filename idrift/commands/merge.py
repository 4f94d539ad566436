"""`idrift merge STORE... --out STORE`: combine results stores, e.g. the shards of a CI matrix.

    pytest benchmarks --idrift-shard 0/2 --idrift-store shard0    # CI job 0
    pytest benchmarks --idrift-shard 1/2 --idrift-store shard1    # CI job 1
    idrift merge shard0 shard1 --out merged                        # then one compare:
    pytest benchmarks --idrift-store merged                        # finds every sample, generates none

Every sample, its image and its metrics are copied; a spec key held by several stores must carry
the same result (status, image pixels, metric versions and values), otherwise nothing is merged and
the command names the key, what differs and both stores. OUT may be new or an existing store (it is
added to); it must not be one of the sources.

Exit status: 0 when merged, 2 on a conflict or an unusable store.
"""

from __future__ import annotations

from pathlib import Path

from idrift.errors import IdriftError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "merge", help="combine results stores (CI shards) into one, refusing conflicting duplicates",
        description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", metavar="STORE", help="results store folders to merge")
    parser.add_argument("--out", required=True, metavar="STORE", help="store folder to merge into (new or existing)")
    parser.set_defaults(func=run)


def _count(path: Path) -> dict[str, int]:
    from idrift.store import ResultsStore

    store = ResultsStore(path, readonly=True)
    try:
        records = store.samples(status=None)
    finally:
        store.close()
    return {"samples": len(records), "failed": sum(1 for r in records if not r.ok),
            "metrics": sum(len(r.metrics) for r in records)}


def run(args) -> int:
    from idrift.store import DB_NAME, merge_stores

    sources = [Path(s) for s in args.stores]
    out = Path(args.out)
    for src in sources:
        if not (src / DB_NAME).is_file():
            raise IdriftError(f"{src} is not a results store (no {DB_NAME} in it); pass the folders that "
                              "--idrift-store / `idrift run --out` wrote")
        if out.exists() and src.resolve() == out.resolve():
            raise IdriftError(f"--out {out} is also a source; merge into a new folder or another store")
    if len({src.resolve() for src in sources}) != len(sources):
        raise IdriftError("a store is given twice; give each source once")

    before = _count(out)["samples"] if (out / DB_NAME).is_file() else 0
    given = before
    for src in sources:
        c = _count(src)
        given += c["samples"]
        print(f"{src}: {c['samples']} samples ({c['failed']} failed), {c['metrics']} metric values")
    added = merge_stores(sources, out)
    after = _count(out)
    plural = "s" if len(sources) > 1 else ""
    print(f"merged {len(sources)} store{plural} into {out}: added {added['samples']} samples, "
          f"{added['metrics']} metric values and {added['runs']} runs; "
          f"{given - after['samples']} samples held by more than one store agreed")
    print(f"{out} holds {after['samples']} samples ({after['failed']} failed; {before} before)")
    return 0
