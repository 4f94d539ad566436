"""Subprocess entry point for tests/test_faults.py and tests/test_determinism.py (not a test module).

    python tests/sweep_child.py sweep STORE CACHE [--claim figure5_guidance] [--threads 1]
        Runs one claim's grid through the real BenchmarkSession + Runner.ensure (tiny profile) into
        the results store STORE, as `pytest benchmarks` does. Prints "READY <todo>" once the session is
        built and before the first sample is generated, then "DONE <n>" at the end. A parent kills it
        at random points and checks the store.

    python tests/sweep_child.py zygote STORE CACHE [--claim figure5_guidance] [--threads 1]
        The same sweep, but the imports and the session's models, identities and metrics are built
        ONCE (prints "ZYGOTE READY"); then each "fork" line on stdin forks a fresh process that opens
        the store and runs the sweep (prints "CHILD <pid>", the child's "READY <todo>" and "DONE <n>",
        then "EXIT <pid> <status>", the status negative for a signal). "quit" ends it. This spares each
        killed process the ~10 s of start-up; the SQLite store is opened only after the fork, as the
        store requires, and torch runs one thread, so nothing thread-bound crosses the fork.

    python tests/sweep_child.py one OUT_PNG [--backbone dev] [--steps 4] [--control keypoints]
                                           [--seed 3] [--threads 1] [--repeat 1]
                                           [--profile tiny|synthetic] [--device cpu|cuda] [--size 64]
        Generates ONE spec's image with the pipeline and saves it as a PNG (exact pixels); prints
        "SHA <pixel sha256>" (once per --repeat, repeats saved as OUT_PNG.<i>.png). Two fresh processes
        must agree bit for bit on a CPU. `--profile synthetic --device cuda` measures the same on a GPU.

Both fix torch's thread count (default 1): the parent runs several children at once on two cores,
and the same thread count in every child keeps CPU reductions in the same order.
"""

from __future__ import annotations

import argparse
import hashlib
import sys


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _session(args):
    from idrift.session import BenchmarkSession, SessionOptions

    return BenchmarkSession(SessionOptions(profile="tiny", store=args.store, cache_dir=args.cache))


def sweep(args, session=None) -> int:
    _threads(args.threads)
    from idrift.claims import CLAIMS_BY_ID

    session = session or _session(args)
    claim = CLAIMS_BY_ID[args.claim]
    specs = session.specs(claim)
    store = session.store
    runner = session.runner
    _ = session.pipeline  # build everything before READY: the parent's kill delays count from here
    todo = sum(store.get(s) is None for s in specs)
    print(f"READY {todo}", flush=True)
    records = runner.ensure(specs, ("id_sim",), progress=False)
    store.finish_run()
    store.close()
    print(f"DONE {len(records)}", flush=True)
    return 0


def zygote(args) -> int:
    import os
    import traceback

    _threads(args.threads)
    session = _session(args)
    # Everything but the store: the provenance builds the models, the face backend and LPIPS.
    _ = session.identities, session.provenance, session.pipeline
    assert "store" not in session.__dict__, "the store must be opened after the fork"
    print("ZYGOTE READY", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            return 0
        if command != "fork":
            print(f"ZYGOTE unknown command {command!r}", flush=True)
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: one sweep, then out without the parent's exit handlers
            code = 1
            try:
                code = sweep(args, session)
            except BaseException:  # noqa: BLE001 - report anything, then leave with os._exit
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(f"CHILD {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"EXIT {pid} {os.waitstatus_to_exitcode(status)}", flush=True)
    return 0


def one(args) -> int:
    _threads(args.threads)
    import numpy as np
    import torch
    from PIL import Image

    from idrift.config import RunSpec
    from idrift.pipeline.infinite_you import IdentityReference, InfiniteYouPipeline

    if args.profile == "tiny":
        from idrift.models.tiny import build_tiny_bundle

        bundle, dtype = build_tiny_bundle(device=args.device), "float32"
    else:  # real-size random weights in bf16 (a GPU)
        from idrift.models.synthetic import build_synthetic_bundle

        bundle, dtype = build_synthetic_bundle(device=args.device), "bfloat16"
    rng = np.random.default_rng(7)
    reference = IdentityReference(
        key="ref", image=rng.integers(0, 256, (128, 128, 3), dtype=np.uint8),
        kps=np.array([[44, 52], [84, 52], [64, 72], [48, 94], [80, 94]], dtype=np.float32),
    )
    guidance = 3.5 if args.backbone == "dev" else 0.0
    spec = RunSpec(backbone=args.backbone, steps=args.steps, guidance=guidance, alpha=1.0, prompt_id="portrait",
                   prompt="A portrait photo of the person, soft natural light", identity="ref", seed=args.seed,
                   width=args.size, height=args.size, dtype=dtype, profile=args.profile, control=args.control)
    pipeline = InfiniteYouPipeline(bundle)
    for i in range(args.repeat):
        image = pipeline(spec, reference).image
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        out = args.out if i == 0 else f"{args.out}.{i}.png"
        image.save(out, format="PNG")
        with Image.open(out) as saved:
            pixels = np.asarray(saved.convert("RGB"))
        print(f"SHA {hashlib.sha256(pixels.tobytes()).hexdigest()}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("sweep")
    p.add_argument("store")
    p.add_argument("cache")
    p.add_argument("--claim", default="figure5_guidance")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=sweep)
    p = sub.add_parser("zygote")
    p.add_argument("store")
    p.add_argument("cache")
    p.add_argument("--claim", default="figure5_guidance")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=zygote)
    p = sub.add_parser("one")
    p.add_argument("out")
    p.add_argument("--backbone", default="dev", choices=("dev", "schnell"))
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--control", default="keypoints", choices=("black", "keypoints"))
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--profile", default="tiny", choices=("tiny", "synthetic"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--repeat", type=int, default=1, help="generate this many times in the process")
    p.set_defaults(func=one)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
