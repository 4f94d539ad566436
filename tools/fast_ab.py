"""A/B of lossless fast-path variants in one process, synthetic schnell-4 and dev-28 on one CUDA GPU.

Each variant: restore, accelerate with its arguments, warm up (compile and capture, timed), 7 rounds of
schnell-4 and 3 of dev-28 with the caches cleared, median seconds and stage medians, and the pixel
difference of its schnell-4 image from the first variant's. The first variant is repeated as a drift
check. Calls named in a variant's ``eager_calls`` skip their CUDA graph (the pipeline before the
conditioning and VAE calls were graphed). Also measured: the bf16 and fp8 matmul rate on 8192^3 and
cuDNN attention at FLUX's shape, the rates behind the floor estimates in the README.

    python tools/fast_ab.py out/fast_ab.json [calls|inductor|tunableop|overheads|epilogues|lossy_quantize]   # a set of variants (VARIANT_SETS); ~6 min on an H100

Results: measurements/h100/fast_ab_calls.json (README "Fast paths"; made by the working tree just
before 2e92313, whose graphs' stats called the skipped calls "eager", now "eager_calls"). The earlier
measurements/h100/fast_ab.json (fused q/k/v, step graphs) came from this script at commit f72a291.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from memory_24gb import latency_specs, synthetic_reference  # noqa: E402

from idrift.metrics.latency import StageTimer  # noqa: E402
from idrift.models.synthetic import build_synthetic_bundle  # noqa: E402
from idrift.pipeline import infinite_you  # noqa: E402
from idrift.pipeline.fast import accelerate, restore  # noqa: E402
from idrift.pipeline.infinite_you import InfiniteYouPipeline, nonfinite_samples  # noqa: E402
from idrift.pipeline.roofline import measure_rates  # noqa: E402

CONDITIONING_CALLS = ("clip", "t5", "identity_tokens", "vae_encode", "vae_decode")
VARIANT_SETS = {
    "calls": (  # measurements/h100/fast_ab_calls.json
        {"name": "step graphs only", "accelerate": {}, "eager_calls": CONDITIONING_CALLS},
        {"name": "all calls graphed", "accelerate": {}},
        {"name": "step graphs only (again)", "accelerate": {}, "eager_calls": CONDITIONING_CALLS},
        # last: its autotuning takes minutes, and what came before is already written
        {"name": "all calls graphed, max-autotune blocks", "accelerate": {"compile_mode": "max-autotune-no-cudagraphs"}},
    ),
    "inductor": (  # inductor's coordinate-descent tuning of its own (elementwise, reduction) kernels
        {"name": "lossless", "accelerate": {}},
        {"name": "lossless, coordinate descent tuning", "accelerate": {}, "inductor": {"coordinate_descent_tuning": True}},
        {"name": "lossless (again)", "accelerate": {}},
    ),
    "tunableop": (  # PyTorch's TunableOp: each GEMM shape timed over cuBLASLt's candidate algorithms
        {"name": "lossless", "accelerate": {}},
        {"name": "lossless, TunableOp", "accelerate": {}, "tunableop": True},
        {"name": "lossless (again)", "accelerate": {}},
    ),
    "overheads": (  # measurements/h100/fast_ab_overheads.json: the benchmark's stage timer, the per-step NaN check
        {"name": "lossless, stage timer", "accelerate": {}},
        {"name": "lossless, no timer", "accelerate": {}, "timer": False},
        # the check replaced by a no-op in this process only: an upper bound on what deferring it would save
        {"name": "lossless, no timer, no per-step NaN check", "accelerate": {}, "timer": False, "nan_check": False},
        # (T5's blocks compiled as well were tried in this set and dropped: transformers branches on whether a
        # CUDA stream is capturing, so dynamo recompiled during the graph capture, and the capture failed.)
    ),
    "epilogues": (  # measurements/h100/fast_ab_epilogues.json: idrift.pipeline.epilogues off and on, interleaved
        {"name": "lossless, no MLP epilogues", "accelerate": {"epilogues": False}},
        {"name": "lossless, MLP epilogues", "accelerate": {}},
        {"name": "lossless, no MLP epilogues (again)", "accelerate": {"epilogues": False}},
        {"name": "lossless, MLP epilogues (again)", "accelerate": {}},
    ),
    # measurements/h100/fast_ab_lossy_quantize.json: lossy single blocks' proj_out input quantised in one pass
    # (epilogues.gelu_cat_quantize) or by inductor's code; a lossy pipeline cannot be restored, so each
    # variant gets a fresh bundle
    "lossy_quantize": (
        {"name": "lossy, inductor's quantisation", "mode": "lossy", "accelerate": {"epilogues": False}},
        {"name": "lossy, gelu_cat_quantize", "mode": "lossy", "accelerate": {}},
        {"name": "lossy, inductor's quantisation (again)", "mode": "lossy", "accelerate": {"epilogues": False}},
        {"name": "lossy, gelu_cat_quantize (again)", "mode": "lossy", "accelerate": {}},
    ),
}


def rates() -> dict:
    """TFLOP/s of an 8192^3 bf16 matmul, the same in fp8 (rowwise scales), and cuDNN attention at FLUX's
    864x1152 shape (4400 tokens, 24 heads of 128): idrift.pipeline.roofline.measure_rates."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
        measured = measure_rates("cuda")
    return {"bf16_matmul_8192": measured["bf16_matmul"] / 1e12, "fp8_rowwise_matmul_8192": measured["fp8_matmul"] / 1e12,
            "cudnn_attention_4400x24x128": measured["attention"] / 1e12}


def main(out: Path, variant_set: str) -> None:
    import torch._inductor.config as inductor_config

    def fresh_pipeline():
        bundle = build_synthetic_bundle(device="cuda")
        bundle.backbone("dev")
        return bundle, InfiniteYouPipeline(bundle)

    bundle, pipe = fresh_pipeline()
    specs = latency_specs("synthetic", bundle.fingerprint)
    reference = synthetic_reference()

    def run(spec, rounds: int, with_timer: bool = True) -> tuple[dict, np.ndarray]:
        seconds, stages = [], []
        for _ in range(rounds):
            pipe.clear_caches()
            timer = StageTimer("cuda") if with_timer else None
            torch.cuda.synchronize()
            start = time.perf_counter()
            image = pipe(spec, reference, timer=timer).image
            torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
            stages.append(timer.seconds if timer else {})
        return ({"median_s": statistics.median(seconds), "all": seconds,
                 "stages": {k: statistics.median(s[k] for s in stages) for k in stages[0]}},
                np.asarray(image).astype(np.int16))

    results: dict = {"rates_tflops": rates(), "gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    print(results["rates_tflops"], flush=True)
    first_image = None
    for index, variant in enumerate(VARIANT_SETS[variant_set]):
        mode = variant.get("mode", "lossless")
        if mode == "lossy" and index > 0:  # the last variant's fp8 weights cannot be restored
            del bundle, pipe
            gc.collect()
            torch.cuda.empty_cache()
            bundle, pipe = fresh_pipeline()
        torch._dynamo.reset()
        start = time.perf_counter()
        tunable = variant.get("tunableop", False)
        torch.cuda.tunable.enable(tunable)
        torch.cuda.tunable.tuning_enable(tunable)  # tuned in the warm-up's eager calls, before any capture
        with inductor_config.patch(variant.get("inductor", {})):  # inductor reads it when compiling: the warm-up
            report = accelerate(pipe, mode, **variant["accelerate"])
            pipe.call_graphs.eager_calls.update(variant.get("eager_calls", ()))
            infinite_you.nonfinite_samples = nonfinite_samples if variant.get("nan_check", True) else lambda x, specs: ""
            for spec in specs.values():
                pipe.clear_caches()
                pipe(spec, reference)
        torch.cuda.tunable.tuning_enable(False)  # timed rounds use the tuned choices, tune nothing new
        warm_s = time.perf_counter() - start
        schnell, image = run(specs["schnell-4"], 7, variant.get("timer", True))
        dev, _ = run(specs["dev-28"], 3, variant.get("timer", True))
        first_image = image if first_image is None else first_image
        diff = np.abs(image - first_image)
        results[variant["name"]] = {
            "mode": mode, "accelerate": variant["accelerate"], "inductor": variant.get("inductor", {}), "tunableop": tunable,
            "tuned_gemms": len(torch.cuda.tunable.get_results()) if tunable else 0,
            "eager_calls": list(variant.get("eager_calls", ())),
            "techniques": report["techniques"], "warm_up_s": warm_s, "schnell-4": schnell, "dev-28": dev,
            "graphs": pipe.call_graphs.stats(), "transformed": report["transformed"],
            "schnell-4_pixels_vs_first": {"max": int(diff.max()), "mean": float(diff.mean())}}
        if mode == "lossless":
            restore(pipe)
        print(variant["name"], json.dumps(results[variant["name"]])[:600], flush=True)
        out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "calls")
