"""Does InfiniteYou fit a 24 GB GPU with idrift.pipeline.memory, and what does it cost in latency?

Three variants, each in its own child process (clean allocator, clean peak statistics), on the synthetic
profile (real-size random weights, 864x1152 bf16) on one GPU:

  reference     the default pipeline: both backbones stay resident, text encoders on the GPU
  offload       fit_memory(pipe): one resident backbone + text encoder offload (lossless)
  offload_8bit  fit_memory(pipe, weights_8bit=True): the same plus fp8 block Linears (LOSSY)

Each child builds the bundle, applies its variant, warms up (schnell-4 then dev-28 once: builds, converts
and moves the backbones; reported apart as `warmup_*`), resets the peak statistics, then times `--rounds`
rounds of schnell-4 and of dev-28 end to end with the caches cleared every round (text, identity and
control encodings included, as benchmarks/test_latency.py; CUDA synchronised), and finally one backbone
swap each way on its own. It reports median seconds, stage medians, peak allocated and reserved GPU bytes
over the timed rounds, whether the peak fits the budget, the memory report of fit_memory, and the pixel
difference of each image from the reference variant's. The JSON goes to --out (rewritten after each variant).

    python tools/memory_24gb.py --out memory_24gb.json          # an H100: about 4 minutes (estimated)
    python tools/memory_24gb.py --profile tiny --out /tmp/m.json  # a dry run on a CPU, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("reference", "offload", "offload_8bit")
ARMS = ("schnell-4", "dev-28")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--profile", choices=("synthetic", "tiny"), default="synthetic",
                        help="synthetic: real sizes on a GPU (default); tiny: a CPU dry run of this script")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, from {', '.join(VARIANTS)} (default: all, in this order)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per arm after the warm-up (default 3)")
    parser.add_argument("--budget", default="24GB", help="GPU memory to fit (default 24GB = 24e9 bytes)")
    parser.add_argument("--variant-child", choices=VARIANTS, help=argparse.SUPPRESS)  # one variant, in this process
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or not args.variants:
        parser.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    from idrift.pipeline.memory import parse_bytes

    try:
        args.budget_bytes = parse_bytes(args.budget, "--budget")
    except ValueError as exc:
        parser.error(str(exc))
    return args


# ---- one variant (child process) -----------------------------------------------------------------
def latency_specs(profile: str, fingerprint: str) -> dict:
    """schnell-4 and dev-28 as the latency claim's specs (idrift.runner.specs_for) for the first identity."""
    from idrift.claims import CLAIMS_BY_ID
    from idrift.config import PROFILE_DEFAULTS, RunSpec
    from idrift.data.prompts import load_prompt_set

    claim = CLAIMS_BY_ID["latency"]
    defaults = PROFILE_DEFAULTS[profile]
    prompts = [p for p in load_prompt_set(claim.samples.prompt_set).prompts
               if claim.samples.prompts is None or p.id in claim.samples.prompts]
    prompt, seed = prompts[0], claim.samples.seeds["smoke"][0]
    specs = {}
    for arm in sorted((a for a in claim.arms if a.name in ARMS), key=lambda a: ARMS.index(a.name)):
        specs[arm.name] = RunSpec(
            backbone=arm.backbone, steps=arm.steps, guidance=arm.guidance_scale, alpha=arm.alpha,
            prompt_id=prompt.id, prompt=prompt.text, identity="synthetic0", seed=seed, width=defaults.width,
            height=defaults.height, dtype=defaults.dtype, profile=profile, weights=fingerprint)
    return specs


def synthetic_reference():
    """The synthetic profile's first identity reference (idrift.session's, drawn from the same seed): random
    512x512 pixels and a face box's keypoints, which is all the pipeline needs of it."""
    import numpy as np

    from idrift.pipeline.infinite_you import IdentityReference
    from idrift.session import kps_from_box

    rng = np.random.default_rng(0)
    return IdentityReference("synthetic0", rng.integers(0, 256, (512, 512, 3), dtype=np.uint8),
                             kps_from_box((128, 96, 384, 416)))


def run_variant(variant: str, profile: str, rounds: int, budget_bytes: int) -> tuple[dict, dict]:
    import numpy as np
    import torch

    from idrift.metrics.latency import StageTimer
    from idrift.pipeline.fast import provenance
    from idrift.pipeline.infinite_you import InfiniteYouPipeline
    from idrift.pipeline.memory import fit_memory, memory_report

    cuda = profile == "synthetic"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("the synthetic profile needs a CUDA GPU; use --profile tiny for a CPU dry run")
    device = "cuda" if cuda else "cpu"
    t0 = time.perf_counter()
    if cuda:
        from idrift.models.synthetic import build_synthetic_bundle

        bundle = build_synthetic_bundle(device=device)
    else:
        from idrift.models.tiny import build_tiny_bundle

        bundle = build_tiny_bundle(device=device)
    pipe = InfiniteYouPipeline(bundle)
    out: dict = {"variant": variant, "build_s": time.perf_counter() - t0}
    specs = latency_specs(profile, bundle.fingerprint)
    reference = synthetic_reference()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def peaks() -> dict:
        if not cuda:
            return {"allocated": None, "reserved": None}
        return {"allocated": torch.cuda.max_memory_allocated(), "reserved": torch.cuda.max_memory_reserved()}

    if variant != "reference":
        # The tiny Linears are narrower than FLUX's 1024+: convert them anyway, so the dry run takes the 8-bit path.
        options = {} if cuda else {"fp8_min_features": 16}
        out["fit_memory"] = fit_memory(pipe, budget_bytes, weights_8bit=(variant == "offload_8bit"), **options)

    def record_peak(into: dict) -> None:
        for key, value in peaks().items():
            if value is not None:
                into[key] = max(into.get(key, 0), value)

    # Per arm: one warm-up call (it builds, converts or moves in that arm's backbone; excluded), then the
    # timed rounds. Each StageTimer resets the peak window when it is made, so `peak` is the largest peak of
    # any timed round: the steady state, without the one-off bf16 build of a backbone.
    warmup_s, warmup_peak, arms, images, peak = {}, {}, {}, {}, {}
    for arm, spec in specs.items():
        pipe.clear_caches()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        sync()
        start = time.perf_counter()
        pipe(spec, reference)
        sync()
        warmup_s[arm] = time.perf_counter() - start
        record_peak(warmup_peak.setdefault(arm, {}))
        if cuda:
            torch.cuda.empty_cache()  # what the build left reserved is not part of the steady state
        seconds, stages = [], []
        for _ in range(rounds):
            pipe.clear_caches()
            timer = StageTimer(device)
            sync()
            start = time.perf_counter()
            result = pipe(spec, reference, timer=timer)
            sync()
            seconds.append(time.perf_counter() - start)
            stages.append(timer.seconds)
            record_peak(peak)
        images[arm] = np.asarray(result.image, dtype=np.uint8)
        arms[arm] = {"seconds": seconds, "median_s": statistics.median(seconds),
                     "stage_medians_s": {s: statistics.median(r.get(s, 0.0) for r in stages) for s in stages[0]}}
    out["warmup_s"] = warmup_s
    out["warmup_peak_bytes"] = warmup_peak if cuda else None  # includes building a backbone in bf16 on the GPU
    out["arms"] = arms

    # one backbone swap each way, timed by itself (no-op when both stay resident)
    swaps = {}
    for name in ("schnell", "dev"):
        sync()
        start = time.perf_counter()
        bundle.backbone(name)
        sync()
        swaps[f"to_{name}"] = time.perf_counter() - start
    out["backbone_swap_s"] = swaps
    record_peak(peak)  # a swap may raise the peak: count it
    out["peak_bytes"] = peak if cuda else None
    out["fits_budget"] = {"allocated": peak["allocated"] <= budget_bytes,
                          "reserved": peak["reserved"] <= budget_bytes} if cuda else None
    out["budget_bytes"] = budget_bytes
    out["resident_bytes_after"] = torch.cuda.memory_allocated() if cuda else None
    if variant != "reference":
        out["memory_report"] = memory_report(pipe)
    out["acceleration"] = provenance(pipe)
    return out, images


# ---- driver --------------------------------------------------------------------------------------
def environment() -> dict:
    import torch

    from idrift.provenance import dist_version

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "diffusers": dist_version("diffusers"), "transformers": dist_version("transformers"),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        env.update(gpu_total_bytes=total, gpu_capability=list(torch.cuda.get_device_capability(0)))
    return env


def pixel_diff(a, b) -> dict:
    import numpy as np

    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {"pixel_max": int(d.max()), "pixel_mean": float(d.mean())}


def main(argv=None) -> int:
    args = parse_args(argv)
    out_path = Path(args.out)
    if args.variant_child:  # child: one variant, results beside --out
        import numpy as np

        result, images = run_variant(args.variant_child, args.profile, args.rounds, args.budget_bytes)
        out_path.write_text(json.dumps(result, indent=1, default=str))
        np.savez_compressed(out_path.with_suffix(".npz"), **{arm.replace("-", "_"): image for arm, image in images.items()})
        return 0

    import numpy as np

    out_path.parent.mkdir(parents=True, exist_ok=True)
    summary: dict = {"profile": args.profile, "budget": args.budget, "budget_bytes": args.budget_bytes,
                     "rounds": args.rounds, "environment": environment(), "variants": {}, "errors": {}}
    reference_images = None
    started = time.perf_counter()
    for variant in args.variants:
        child_out = out_path.with_name(f"{out_path.stem}.{variant}.json")
        command = [sys.executable, __file__, "--out", str(child_out), "--profile", args.profile,
                   "--rounds", str(args.rounds), "--budget", args.budget, "--variant-child", variant]
        print(f"[memory_24gb] {variant} ...", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(command, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        if done.returncode != 0:
            summary["errors"][variant] = f"child exited with {done.returncode} after {time.perf_counter() - t0:.0f} s"
        else:
            result = json.loads(child_out.read_text())
            images = dict(np.load(child_out.with_suffix(".npz")))
            if variant == "reference":
                reference_images = images
            elif reference_images is not None:
                result["vs_reference"] = {arm: pixel_diff(images[arm], reference_images[arm]) for arm in images}
            summary["variants"][variant] = result
            child_out.unlink()  # everything is in the summary now
            child_out.with_suffix(".npz").unlink()
            line = ", ".join(f"{arm} {r['median_s']:.3f} s" for arm, r in result["arms"].items())
            peak = result["peak_bytes"]
            if peak:
                line += f"; peak allocated {peak['allocated'] / 1e9:.2f} GB, reserved {peak['reserved'] / 1e9:.2f} GB"
                line += f", fits {args.budget}: {result['fits_budget']['reserved']}"
            print(f"[memory_24gb] {variant}: {line}", flush=True)
        summary["wall_s"] = time.perf_counter() - started
        out_path.write_text(json.dumps(summary, indent=1, default=str))
    print(f"[memory_24gb] wrote {out_path}")
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
