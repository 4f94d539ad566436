"""A/B of two lossless techniques in one process: fused q/k/v projections (diffusers `fuse_projections`,
applied by hand here) and CUDA graphs (idrift.pipeline.cuda_graphs), synthetic schnell-4 and dev-28 on one
CUDA GPU, VAE left eager. Each variant: accelerate, warm up, 7 rounds of schnell-4 and 3 of dev-28 with
the caches cleared, median seconds and stage medians; the first variant is repeated last as a drift check.

    python tools/fast_ab.py out/fast_ab.json       # ~3 min on an H100

Result of 2026-11-25 (H100): measurements/h100/fast_ab.json (fused q/k/v: under 1 % per step, left out;
CUDA graphs: InfuseNet step 0.0309 -> 0.0288 s, dev-28 4.93 -> 4.80 s, kept). That file was made by an
earlier revision in which accelerate() itself fused (the same diffusers `fuse_projections`, with the
separate Linears dropped); this script fuses by hand and keeps them, which changes memory, not the matmuls.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from memory_24gb import latency_specs  # noqa: E402

from idrift.metrics.latency import StageTimer  # noqa: E402
from idrift.models.synthetic import build_synthetic_bundle  # noqa: E402
from idrift.pipeline.fast import accelerate, restore  # noqa: E402
from idrift.pipeline.infinite_you import IdentityReference, InfiniteYouPipeline  # noqa: E402
from idrift.session import kps_from_box  # noqa: E402

VARIANTS = ((False, False), (True, False), (False, True), (True, True), (False, False))  # (fuse, graphs)


def fuse_double_blocks(bundle) -> list:
    attentions = [m.attn for model in (*bundle._backbones.values(), bundle.infusenet) for m in model.modules()
                  if type(m).__name__ == "FluxTransformerBlock"]
    for attention in attentions:
        attention.fuse_projections()
    return attentions


def main(out: Path) -> None:
    bundle = build_synthetic_bundle(device="cuda")
    bundle.backbone("dev")
    pipe = InfiniteYouPipeline(bundle)
    specs = latency_specs("synthetic", bundle.fingerprint)
    rng = np.random.default_rng(0)  # the synthetic profile's first reference (idrift.session)
    reference = IdentityReference("synthetic0", rng.integers(0, 256, (512, 512, 3), dtype=np.uint8),
                                  kps_from_box((128, 96, 384, 416)))

    def run(spec, rounds: int) -> dict:
        seconds, stages = [], []
        for _ in range(rounds):
            pipe.clear_caches()
            timer = StageTimer("cuda")
            torch.cuda.synchronize()
            start = time.perf_counter()
            pipe(spec, reference, timer=timer)
            torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
            stages.append(timer.seconds)
        return {"median_s": statistics.median(seconds), "all": seconds,
                "stages": {k: statistics.median(s[k] for s in stages) for k in stages[0]}}

    results = {}
    for fuse, graphs in VARIANTS:
        name = f"fuse={fuse},graphs={graphs}"
        torch._dynamo.reset()
        start = time.perf_counter()
        fused = fuse_double_blocks(bundle) if fuse else []
        accelerate(pipe, "lossless", vae=False, cuda_graphs=graphs)
        for spec in specs.values():
            pipe.clear_caches()
            pipe(spec, reference)
        results[name] = {"warm_s": time.perf_counter() - start, "schnell-4": run(specs["schnell-4"], 7),
                         "dev-28": run(specs["dev-28"], 3)}
        restore(pipe)
        for attention in fused:
            attention.unfuse_projections()
        print(name, json.dumps(results[name])[:400], flush=True)
        out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
