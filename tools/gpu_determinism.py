"""Same spec twice on the GPU (synthetic profile): how far apart are the images?"""
import json
import os

import numpy as np

from idrift.claims import CLAIMS_BY_ID
from idrift.session import BenchmarkSession, SessionOptions

s = BenchmarkSession(SessionOptions(profile="synthetic", store="/tmp/det-store"))
out = {}
for claim_id, arm in (("latency", "schnell-4"), ("latency", "dev-28")):
    spec = next(x for x in s.specs(CLAIMS_BY_ID[claim_id]) if f"{x.backbone}-{x.steps}" == arm)
    ref = s.runner.reference(spec.identity)
    images = []
    for _ in range(3):
        s.pipeline.clear_caches()
        images.append(np.asarray(s.pipeline(spec, ref).image, dtype=np.int16))
    d = [np.abs(images[0] - im) for im in images[1:]]
    out[arm] = {"max_abs_diff": int(max(x.max() for x in d)), "mean_abs_diff": float(np.mean([x.mean() for x in d])),
                "bitwise_identical_runs": int(sum(not x.any() for x in d)), "compared": len(d)}
    print(arm, out[arm], flush=True)
out["gpu"] = s.provenance["gpu"]; out["packages"] = s.provenance["packages"]
json.dump(out, open(os.path.join(os.environ.get("OUT", "."), "gpu_determinism.json"), "w"), indent=1)
