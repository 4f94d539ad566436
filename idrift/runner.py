"""The generic engine: claim -> RunSpecs -> generate (cached by spec hash) -> measure -> store.

Nothing here knows a particular claim. `specs_for` expands a claim's arms over its identities,
prompts and seeds; `ensure` generates what the store does not already hold and measures what lacks a
current metric version. Trajectory arms that differ only in their step are served by one run whose
x0 predictions are decoded at each step.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np
from tqdm.auto import tqdm

from idrift.claims import DRIFT_STEPS, Claim
from idrift.config import RunSpec
from idrift.errors import NonFiniteError
from idrift.metrics import REGISTRY, MeasuredSample

if TYPE_CHECKING:  # the pipeline (torch, diffusers) loads when a sample is generated, not when grids are planned
    from idrift.pipeline.infinite_you import IdentityReference, InfiniteYouPipeline

PIXEL_METRIC_VERSION = "pixels/2"
LEASE_POLL_S = 0.5  # how often a process waiting for a sample another process leased looks again
# pixels are always measured: cheap, and the golden values. Registered metrics: idrift.metrics.REGISTRY.
ALL_METRICS = ("pixels", "id_sim", "lpips", *REGISTRY)


@dataclass(frozen=True)
class Identity:
    id: str
    image: np.ndarray  # RGB uint8
    kps: np.ndarray  # (5, 2), insightface order
    n_faces: int = 1  # faces found in the reference photo (the largest is used, as InfiniteYou does)


@dataclass
class RunContext:
    """Everything a run needs besides the claims: profile, models, data, store, metrics."""

    profile: str
    tier: str
    width: int
    height: int
    dtype: str
    identities: list[Identity]
    prompt_sets: Callable[[str], object]  # name -> PromptSet (idrift.data.prompts.load_prompt_set)
    store: object  # idrift.store.ResultsStore
    pipeline_factory: Callable[[str], InfiniteYouPipeline]  # RunSpec.acceleration -> the pipeline of that path
    weights_fingerprint: Callable[[], str]
    identity_metric: object | None = None  # idrift.metrics.identity.IdentitySimilarity, or None: skipped
    lpips_metric: object | None = None  # idrift.metrics.lpips.LPIPSMetric, or None: skipped
    # A second face backend (dlib beside antelopev2 on `real`): only to report the two backends' agreement.
    agreement_metric: object | None = None
    # name -> the registered metric (idrift.metrics.REGISTRY) built for this run, or None: not measured here
    registered_metric: Callable[[str], object | None] = lambda name: None
    skipped_metrics: dict[str, str] = field(default_factory=dict)  # metric -> why it cannot be judged here
    shard: tuple[int, int] | None = None  # (i, n): this process runs specs whose hash falls in shard i
    # Samples whose runs differ only in the seed are generated this many at a time (one batched run).
    batch_size: int = 1

    def pipeline_for(self, acceleration: str) -> InfiniteYouPipeline:
        """The pipeline that makes samples of this numerical path (the factory keeps and switches them)."""
        return self.pipeline_factory(acceleration)


def identities_for(claim: Claim, ctx: RunContext) -> list[Identity]:
    """The first N identities of the set (N from the claim's tier). For `top_identities` claims the
    set is re-ranked by measured dev-28/schnell-4 ID_sim when the store has it (the paper's top-10)."""
    n = claim.samples.identities[ctx.tier]
    pool = list(ctx.identities)
    if claim.samples.top_identities:
        means = ctx.store.identity_means("id_sim") if hasattr(ctx.store, "identity_means") else {}
        if means:
            pool.sort(key=lambda ident: -means.get(ident.id, float("-inf")))
    return pool[:n]


def specs_for(claim: Claim, ctx: RunContext) -> list[RunSpec]:
    prompt_set = ctx.prompt_sets(claim.samples.prompt_set)
    prompts = [p for p in prompt_set.prompts if claim.samples.prompts is None or p.id in claim.samples.prompts]
    fingerprint = ctx.weights_fingerprint()
    specs = []
    for arm, ident, prompt, seed in itertools.product(
        claim.arms, identities_for(claim, ctx), prompts, claim.samples.seeds[ctx.tier]
    ):
        specs.append(RunSpec(
            **arm.spec_fields(), prompt_id=prompt.id, prompt=prompt.text, identity=ident.id, seed=seed,
            width=ctx.width, height=ctx.height, dtype=ctx.dtype, profile=ctx.profile, weights=fingerprint,
        ))
    if ctx.shard is not None:
        from idrift.sharding import in_shard

        specs = [s for s in specs if in_shard(_run_key(s), *ctx.shard)]
    return specs


def _run_key(spec: RunSpec) -> str:
    """The key of the pipeline run that produces `spec` (a trajectory's steps share one run)."""
    return spec.replace(steps=spec.trajectory_of).key if spec.mode == "trajectory" else spec.key


def _trajectory_groups(specs: Iterable[RunSpec]) -> list[list[RunSpec]]:
    """Group specs so that each group is served by one pipeline run."""
    groups: dict[str, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(_run_key(spec), []).append(spec)
    return list(groups.values())


def _run_spec(group: list[RunSpec]) -> RunSpec:
    """The pipeline run that serves a group: a trajectory's full-length run, or the budget spec itself."""
    first = group[0]
    if first.mode == "trajectory":
        return first.replace(mode="budget", steps=first.trajectory_of, trajectory_of=0)
    return first


def _batches(groups: list[list[RunSpec]], batch_size: int) -> list[list[list[RunSpec]]]:
    """Chunks of at most `batch_size` groups whose runs differ only in the seed (one batched run each)."""
    alike: dict[str, list[list[RunSpec]]] = {}
    for group in groups:
        alike.setdefault(_run_spec(group).replace(seed=0).key, []).append(group)
    return [same[i:i + batch_size] for same in alike.values() for i in range(0, len(same), batch_size)]


def identity_metric_version(metric) -> str:
    """Stored ID_sim values are per face backend; a new backend version re-measures them."""
    return "" if metric is None else f"id_sim/{metric.backend.name}-{metric.backend.version}"


def as_record(record) -> dict:
    """A store record as the plain dict that idrift.evaluate reads."""
    return {"spec": record.spec, "status": record.status, "error": record.error,
            "stage_seconds": record.stage_seconds,
            "metrics": {name: entry["values"] for name, entry in record.metrics.items()}}


class Runner:
    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self._references = {ident.id: ident for ident in ctx.identities}
        self._measured_references: set[tuple[str, str]] = set()  # (metric name, identity)

    def reference(self, identity_id: str) -> IdentityReference:
        ident = self._references[identity_id]
        from idrift.pipeline.infinite_you import IdentityReference

        return IdentityReference(key=ident.id, image=ident.image, kps=ident.kps)

    def ensure(self, specs: list[RunSpec], metrics: tuple[str, ...] = ALL_METRICS, *, desc: str = "",
               progress: bool = True) -> list[dict]:
        """Generate `specs` and measure `metrics` on them where the store lacks either; return
        their records in spec order."""
        store = self.ctx.store
        usable = getattr(store, "usable", None)  # ResultsStore: also checks the image file against its hash
        todo = [s for s in specs if not (usable(s) if usable else store.get(s) is not None)]
        if self.ctx.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.ctx.batch_size}")
        batches = _batches(_trajectory_groups(todo), self.ctx.batch_size)
        bar = tqdm(total=len(todo), desc=desc or "samples", unit="img", disable=not progress or not todo,
                   dynamic_ncols=True)
        deferred: list[list[RunSpec]] = []  # groups another process holds the lease of
        for batch in batches:
            batch, others = self._leased(batch)
            deferred += others
            if not batch:
                continue
            first = batch[0][0]
            more = f" +{len(batch) - 1}" if len(batch) > 1 else ""
            bar.set_postfix_str(f"{first.config_label} {first.sample_label}{more}", refresh=False)
            self._generate_batch_leased(batch)
            bar.update(sum(len(group) for group in batch))
        while deferred:  # another process is making these: wait for it, or take over a freed lease
            waiting = []
            for group in deferred:
                if all(usable(s) if usable else store.get(s) is not None for s in group):
                    bar.update(len(group))
                    continue
                mine, _ = self._leased([group])
                if mine:
                    self._generate_batch_leased(mine)
                    bar.update(len(group))
                else:
                    waiting.append(group)
            deferred = waiting
            if deferred:
                time.sleep(LEASE_POLL_S)
        bar.close()
        for spec in specs:
            self._measure(spec, metrics)
        return [as_record(store.get(s)) for s in specs]

    def _leased(self, batch: list[list[RunSpec]]) -> tuple[list[list[RunSpec]], list[list[RunSpec]]]:
        """(groups of `batch` this process now holds the leases of, groups another process holds)."""
        take = getattr(self.ctx.store, "take_leases", None)
        if take is None:
            return batch, []
        held = take([s.key for group in batch for s in group])
        mine = [g for g in batch if all(s.key in held for s in g)]
        release = [s.key for g in batch if g not in mine for s in g if s.key in held]
        if release:
            self.ctx.store.release_leases(release)
        return mine, [g for g in batch if g not in mine]

    def _generate_batch_leased(self, batch: list[list[RunSpec]]) -> None:
        try:
            self._generate_batch(batch)
        finally:
            release = getattr(self.ctx.store, "release_leases", None)
            if release is not None:
                release([s.key for group in batch for s in group])

    def _generate_batch(self, batch: list[list[RunSpec]]) -> None:
        """One pipeline run for the groups of `batch` (same run but the seed); results go to the store."""
        store = self.ctx.store
        first = batch[0][0]
        reference = self.reference(first.identity)
        steps: tuple[int, ...] = ()
        if first.mode == "trajectory":
            # One run serves every standard budget: decoding all of them now (a VAE decode each)
            # spares the next arms of the grid a whole trajectory run.
            wanted = {*DRIFT_STEPS, *(s.steps for group in batch for s in group)}
            steps = tuple(sorted(wanted & set(range(1, first.trajectory_of + 1))))
            batch = [[group[0].replace(steps=k) for k in steps] for group in batch]
        try:
            started = time.perf_counter()
            pipeline = self.ctx.pipeline_for(first.acceleration)
            results = pipeline.generate_batch([_run_spec(group) for group in batch], reference, trajectory_steps=steps)
            seconds = dict(results[0].stage_seconds, total=time.perf_counter() - started)
        except NonFiniteError as exc:
            if len(batch) > 1:  # find the bad sample(s) alone: their batch mates must not fail with them
                for group in batch:
                    self._generate_batch([group])
                return
            for spec in batch[0]:  # the sample is failed; the run goes on
                where = (f"; sample {spec.key} is step {spec.steps} of that trajectory run"
                         if spec.mode == "trajectory" else "")
                store.record_failure(spec, f"{exc}{where}")
            return
        for group, result in zip(batch, results):
            for spec in group:
                image = result.trajectory[spec.steps] if spec.mode == "trajectory" else result.image
                store.put_generation(spec, image, seconds, {"trajectory_group": len(group), "batch": len(batch)})

    def _measure_identity(self, spec: RunSpec, record, reference: Identity, name: str, metric) -> None:
        version = identity_metric_version(metric)
        if metric is None or not self.ctx.store.needs_metric(spec.key, name, version):
            return
        if (name, spec.identity) not in self._measured_references:
            metric.reference(spec.identity, reference.image, source=f"reference image of identity {spec.identity}")
            self._measured_references.add((name, spec.identity))
        values = metric.update(f"{spec.key}@{version}", spec.identity, record.load_image())
        self.ctx.store.put_metrics(spec.key, name, version, values)

    def _measure(self, spec: RunSpec, metrics: tuple[str, ...]) -> None:
        store = self.ctx.store
        record = store.get(spec)
        if record is None or not record.ok:
            return
        if store.needs_metric(spec.key, "pixels", PIXEL_METRIC_VERSION):
            pixels = np.asarray(record.load_image())
            store.put_metrics(spec.key, "pixels", PIXEL_METRIC_VERSION, {
                "pixel_mean": float(pixels.mean()), "pixel_std": float(pixels.std()),
                "sha256": hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest(),
            })
        reference = self._references[spec.identity]
        if "id_sim" in metrics:
            self._measure_identity(spec, record, reference, "id_sim", self.ctx.identity_metric)
            self._measure_identity(spec, record, reference, "id_sim_agreement", self.ctx.agreement_metric)
        for name in (m for m in metrics if m in REGISTRY):
            metric = self.ctx.registered_metric(name)
            if metric is not None and store.needs_metric(spec.key, name, metric.version):
                sample = MeasuredSample(image=record.load_image(), reference=reference.image, prompt=spec.prompt,
                                        identity=spec.identity, key=spec.key)
                store.put_metrics(spec.key, name, metric.version, metric.measure(sample))
        lpips_metric = self.ctx.lpips_metric
        if ("lpips" in metrics and lpips_metric is not None
                and store.needs_metric(spec.key, "lpips", lpips_metric.version)):
            distance = lpips_metric.distance(record.load_image(), reference.image)
            store.put_metrics(spec.key, "lpips", lpips_metric.version, {"lpips": float(distance)})
