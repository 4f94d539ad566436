# Issue 7: the same smoke grid (synthetic profile; schnell-4 and dev-28) on two GPUs with
# `pytest -n 2` and on one GPU of the same machine; wall times and per-sample agreement.
# A longer grid shows the speed-up past the fixed start-up costs: GRID_EXTRA="--idrift-tier full"
# (and SWEEP_TIMEOUT_S, default 300 s per half). The device tool's wheels (.whl/) are installed first.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=index,name --format=csv,noheader
GRID="benchmarks/test_backbone_swap.py benchmarks/test_guidance.py -k test_sample --idrift-profile synthetic -q -p no:cacheprovider ${GRID_EXTRA:-}"
LIMIT=${SWEEP_TIMEOUT_S:-300}
t0=$(date +%s.%N)
timeout $LIMIT python3 -m pytest $GRID -n 2 --idrift-store /tmp/store-2gpu --idrift-fresh 2>&1 | grep -E "passed|failed|error" | tail -2
t1=$(date +%s.%N)
CUDA_VISIBLE_DEVICES=0 timeout $LIMIT python3 -m pytest $GRID --idrift-store /tmp/store-1gpu --idrift-fresh 2>&1 | grep -E "passed|failed|error" | tail -2
t2=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" <<'PY'
import json, os, sys
from idrift.store import ResultsStore
from datetime import datetime
t0, t1, t2 = map(float, sys.argv[1:])

def workers(store):
    runs = store.runs()
    start = min(datetime.fromisoformat(r["started"]) for r in runs)
    by_run = {}
    for r in store.samples():
        by_run.setdefault(r.run_id, []).append(r)
    return {run: {"samples": len(rs), "generation_s": round(sum(sum(r.stage_seconds.values()) for r in rs), 1),
                  "first_stored_s": round(min((datetime.fromisoformat(r.created) - start).total_seconds() for r in rs), 1),
                  "last_stored_s": round(max((datetime.fromisoformat(r.created) - start).total_seconds() for r in rs), 1)}
            for run, rs in by_run.items()}

two, one = ResultsStore("/tmp/store-2gpu"), ResultsStore("/tmp/store-1gpu")
a = {r.spec_key: (r.image_sha256, r.metrics.get("pixels", {}).get("values")) for r in two.samples()}
b = {r.spec_key: (r.image_sha256, r.metrics.get("pixels", {}).get("values")) for r in one.samples()}
out = {"wall_s_2gpu": t1 - t0, "wall_s_1gpu": t2 - t1, "speedup": (t2 - t1) / (t1 - t0),
       "samples_2gpu": len(a), "samples_1gpu": len(b), "same_keys": a.keys() == b.keys(),
       "identical_images": sum(a[k][0] == b[k][0] for k in a.keys() & b.keys()),
       "identical_pixel_metrics": sum(a[k][1] == b[k][1] for k in a.keys() & b.keys()),
       "runs_in_2gpu_store": len(two.runs()),
       # per worker (one store run each): samples, their summed generation seconds, and when the first and
       # last of them were stored, in seconds after the earliest run started (the rest is startup: imports,
       # collection, building the models)
       "workers_2gpu": workers(two), "workers_1gpu": workers(one),
       "backbones": sorted({json.dumps([r.spec["backbone"], r.spec["steps"]]) for r in one.samples()})}
print(json.dumps(out, indent=1))
json.dump(out, open(os.path.join(os.environ["OUT"], "two_gpu_sweep.json"), "w"), indent=1)
PY
