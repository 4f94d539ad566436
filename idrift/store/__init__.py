"""The results store: one SQLite file plus one PNG per generated sample.

Layout of a store folder:
    results.sqlite        runs, samples and metrics (WAL journal, safe for several processes)
    images/<spec_key>.png the generated image of each finished sample

Why it is built this way:
- Several pytest-xdist workers write into one store at once. SQLite in WAL mode lets readers run
  beside one writer; every write is a short `BEGIN IMMEDIATE` transaction and a busy timeout makes
  the others wait their turn instead of failing. (WAL needs a local file system, not NFS.)
- A killed sweep must resume without redoing or losing work. An image is written to a temporary
  file, fsynced and renamed into place (atomic), and only then is its row committed. A row whose
  image is missing is treated as not finished, so `get` returns None and the runner regenerates it.
- Each metric is one row per (sample, metric) with the metric's version: a rerun recomputes a metric
  only when its version changed (`needs_metric`). Regenerating a sample drops its old metrics.
- Everything stored as JSON is serialised with sort_keys (and no NaN: a NaN result is a failure,
  recorded with `record_failure`, not a number).
- Sharded CI runs write separate stores that `merge_stores` combines; it refuses two different
  results for one spec key.

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> from idrift.config import RunSpec
    >>> spec = RunSpec(backbone="schnell", steps=4, guidance=0.0, alpha=1.0, prompt_id="portrait",
    ...                prompt="A portrait photo of the person", identity="id0", seed=0,
    ...                width=64, height=64, dtype="float32", profile="tiny")
    >>> store = ResultsStore(tempfile.mkdtemp())
    >>> store.get(spec) is None
    True
    >>> store.put_generation(spec, Image.new("RGB", (64, 64)), {"backbone": 0.1}, {"profile": "tiny"})
    >>> store.get(spec).status
    'ok'
    >>> store.needs_metric(spec.key, "lpips_reference", "v1")
    True
    >>> store.put_metrics(spec.key, "lpips_reference", "v1", {"lpips": 0.5})
    >>> store.needs_metric(spec.key, "lpips_reference", "v1")
    False
    >>> store.close()
"""

from idrift.store.leases import _owner_gone
from idrift.store.merge import merge_stores
from idrift.store.records import SampleRecord, atomic_copy, atomic_write, image_problem, image_sha256
from idrift.store.results import ResultsStore
from idrift.store.schema import (
    APPLICATION_ID,
    BUSY_TIMEOUT_S,
    DB_NAME,
    IMAGES_DIR,
    LEASE_S,
    SCHEMA_VERSION,
    SPEC_FIELDS,
    STATUSES,
    MergeConflictError,
    StoreError,
    _connect,
    _retry_busy,
)

__all__ = [
    "APPLICATION_ID", "BUSY_TIMEOUT_S", "DB_NAME", "IMAGES_DIR", "LEASE_S", "SCHEMA_VERSION", "SPEC_FIELDS",
    "STATUSES", "MergeConflictError", "ResultsStore", "SampleRecord", "StoreError", "_connect", "_owner_gone",
    "_retry_busy", "atomic_copy", "atomic_write", "image_problem", "image_sha256", "merge_stores",
]
