"""Step modulation (idrift.pipeline.modulation) on and off, interleaved, on one CUDA GPU; synthetic profile.

Four variants in one process, per step / at once / per step / at once (interleaved, so that a slow drift of
the card's clocks does not read as an effect), each: accelerate(pipe, "lossless", modulation=...), one
warm-up image per spec, then 10 schnell-4 and 4 dev-28 images with the caches cleared, stage seconds from
the benchmark's StageTimer. The identity stage's parts are timed too (face alignment, the crop's conversion
to a tensor, the identity-token graph): a stall in the conversion, then done on the CPU, made that stage
bimodal (3 or 45 ms) and hid the effect in an earlier, non-interleaved A/B.

    python tools/modulation_ab.py out/modulation_ab.json   # ~3 min on an H100

Results: measurements/h100/modulation_ab.json (README "Fast paths").
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from insightface.utils import face_align  # noqa: E402
from memory_24gb import latency_specs, synthetic_reference  # noqa: E402

from idrift.metrics.latency import StageTimer  # noqa: E402
from idrift.models.ir_se50 import face_crop_to_tensor  # noqa: E402
from idrift.models.synthetic import build_synthetic_bundle  # noqa: E402
from idrift.pipeline.fast import accelerate, restore  # noqa: E402
from idrift.pipeline.infinite_you import InfiniteYouPipeline  # noqa: E402

VARIANTS = (("per step", False), ("at once", True), ("per step again", False), ("at once again", True))
ROUNDS = {"schnell-4": 10, "dev-28": 4}


def main(out: Path) -> None:
    bundle = build_synthetic_bundle(device="cuda")
    bundle.backbone("dev")
    pipe = InfiniteYouPipeline(bundle)
    specs = latency_specs("synthetic", bundle.fingerprint)
    reference = synthetic_reference()
    parts: dict[str, float] = {}

    def clock(name, fn):
        torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        torch.cuda.synchronize()
        parts[name] = time.perf_counter() - start
        return result

    def face_crop(ref):  # InfiniteYouPipeline._face_crop, its parts timed
        kps = np.asarray(ref.kps, dtype=np.float32)
        matrix = clock("estimate_norm", lambda: face_align.estimate_norm(kps, 112))
        crop = clock("warpAffine", lambda: cv2.warpAffine(ref.image, matrix, (112, 112), borderValue=0.0))
        dtype = next(bundle.id_encoder.parameters()).dtype
        return clock("to_tensor", lambda: face_crop_to_tensor(crop, pipe.device, dtype))

    plain_run = pipe._run

    def run(name, fn, **kwargs):
        if name != "identity_tokens":
            return plain_run(name, fn, **kwargs)
        return clock("identity_graph", lambda: plain_run(name, fn, **kwargs))

    pipe._face_crop, pipe._run = face_crop, run
    results: dict = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    for label, modulation in VARIANTS:
        restore(pipe)
        torch._dynamo.reset()
        accelerate(pipe, "lossless", modulation=modulation)
        for spec in specs.values():  # compile and capture
            pipe.clear_caches()
            pipe(spec, reference)
        rows = []
        for name, rounds in ROUNDS.items():
            for _ in range(rounds):
                pipe.clear_caches()
                parts.clear()
                timer = StageTimer("cuda")
                torch.cuda.synchronize()
                start = time.perf_counter()
                pipe(specs[name], reference, timer=timer)
                torch.cuda.synchronize()
                rows.append({"spec": name, "s": time.perf_counter() - start, **timer.seconds,
                             **{f"{k}_ms": v * 1e3 for k, v in parts.items()}})
        results[label] = rows
        for name in ROUNDS:
            mine = [r for r in rows if r["spec"] == name]
            print(label, name, {k: round(statistics.median(r[k] for r in mine), 4) for k in mine[0] if k != "spec"}, flush=True)
        out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
