"""One benchmark session: the claims run on the profile's models, judged, and gated against a baseline.

Shared by the pytest plugin (`pytest benchmarks`) and the `idrift run` command, so both run the same
code; `compare` and `bless` make one from a finished run (`from_run`). The session is the sum of its
rooms: lazy resources (idrift.session.resources: models, identities, metrics, store folder), numerical
paths (idrift.session.paths: one pipeline per acceleration label), timing (idrift.session.timing), and
here the claims, the provenance (idrift.provenance.run_provenance) and the gate (idrift.baselines.judge).

A claim's arm may name its numerical path (`Arm.acceleration`: the fast_paths claim); every other arm
runs on the path the session-wide options name (`--idrift-accelerate`, `--idrift-memory`,
`--idrift-step-cache`: an idrift.accel.plan.AccelerationPlan). The label goes into every RunSpec, so the
store never mixes accelerated images with the reference path's.
"""

from __future__ import annotations

from functools import cached_property

from idrift.claims import Claim
from idrift.config import DEFAULT_BASELINE, EAGER, PROFILE_DEFAULTS
from idrift.evaluate import ClaimResult, ExpectationOutcome, check_expectations, evaluate
from idrift.runner import RunContext, Runner, specs_for
from idrift.session.options import SessionOptions
from idrift.session.paths import PathsMixin
from idrift.session.resources import SessionResources
from idrift.session.timing import TimingMixin
from idrift.verdicts import SKIP_REASONS


class BenchmarkSession(SessionResources, PathsMixin, TimingMixin):
    def __init__(self, options: SessionOptions):
        super().__init__(options)
        self.results: dict[str, ClaimResult] = {}
        self.outcomes: dict[str, list[ExpectationOutcome]] = {}
        self.verdicts: dict[str, list] = {}
        self.latency: dict[str, dict] = {}
        self.timed: dict[str, dict] = {}
        self.spec_keys: dict[str, list[str]] = {}  # claim id -> the keys of the samples run_claim evaluated

    @classmethod
    def from_run(cls, run, baseline: str | None = None, results: dict | None = None) -> BenchmarkSession:
        """A session that holds a finished run's results (an idrift.run_folder.Run), so that `compare` and
        `bless` use the very gate and baseline code of the pytest path. Nothing is generated and no model
        is built: `results` (claim id -> ClaimResult) defaults to the run's, re-evaluated from its store."""
        session = cls(SessionOptions(profile=run.profile, tier=run.tier, baseline=baseline,
                                     aggregation=run.aggregation, store=str(run.store_path)))
        # `provenance` is a cached_property that would build the models to fingerprint them. Seeding it
        # with the run's provenance is both cheaper and right: the numbers came from that run.
        session.__dict__["provenance"] = run.provenance
        session.latency = run.latency
        for claim_id, result in (run.results() if results is None else results).items():
            session.results[claim_id] = result
            session.outcomes[claim_id] = check_expectations(result, session.profile, SKIP_REASONS)
        return session

    @cached_property
    def store(self):
        from idrift.store import ResultsStore

        if self.options.fresh:
            self.wipe_store()
        store = ResultsStore(self.store_path)
        store.start_run(provenance=self.provenance)
        return store

    @cached_property
    def context(self) -> RunContext:
        from idrift.data.prompts import load_prompt_set

        defaults = PROFILE_DEFAULTS[self.profile]
        return RunContext(
            profile=self.profile, tier=self.options.tier, width=defaults.width, height=defaults.height,
            dtype=defaults.dtype, identities=self.identities, prompt_sets=load_prompt_set, store=self.store,
            pipeline_factory=self.pipeline_for, weights_fingerprint=self.weights_fingerprint,
            identity_metric=self.identity_metric, lpips_metric=self.lpips_metric, shard=self.options.shard,
            agreement_metric=self.agreement_metric, batch_size=self.options.batch_size,
            registered_metric=self.registered_metric,
        )

    @cached_property
    def runner(self) -> Runner:
        return Runner(self.context)

    def weights_fingerprint(self) -> str:
        return self.bundle.fingerprint

    # ---- provenance ---------------------------------------------------------------------------
    @cached_property
    def provenance(self) -> dict:
        """idrift.provenance.run_provenance of this session's parts: every stored number says how it was made."""
        from idrift.pipeline.infinite_you import noise_provenance
        from idrift.provenance import environment_provenance, run_provenance

        if self.profile == "real":
            # From configs and file headers, without loading a tensor.
            from idrift.models.weights_check import check_weights

            weights = {s.component: s.fingerprint for s in check_weights(self.weight_paths) if s.fingerprint}
        else:
            weights = dict(self.bundle.fingerprints)
        loras = None
        if self.options.loras:
            from idrift.models.lora import lora_provenance

            loras = lora_provenance(self.options.loras)
        return run_provenance(
            profile=self.profile, tier=self.options.tier, aggregation=self.options.aggregation,
            environment=environment_provenance(self.device), weights=weights,
            face_backend=None if self.face_backend is None else self.face_backend.provenance(),
            lpips=None if self.lpips_metric is None else self.lpips_metric.provenance(),
            metrics=self.metrics_provenance(),  # registered metrics (idrift.metrics.REGISTRY): CLIP-T's model
            acceleration=self.acceleration_provenance(),
            noise=noise_provenance(self.device),  # seed S's noise depends on the generator's device type
            loras=loras,
            # references with several faces are used by their largest one: say which
            reference_faces={i.id: i.n_faces for i in self.identities if i.n_faces > 1} or None,
            memory=self.memory_provenance(),  # None without --idrift-memory
        )

    # ---- claims -------------------------------------------------------------------------------
    def specs(self, claim: Claim):
        """The claim's RunSpecs, labelled with this run's acceleration (part of their keys) unless its arms
        name their own paths (fast_paths). The label is set after specs_for, so --idrift-shard splits an
        accelerated grid exactly as it splits the eager one."""
        specs = specs_for(claim, self.context)
        own_paths = any(arm.acceleration != EAGER for arm in claim.arms)
        label = EAGER if own_paths else self.options.plan.label
        if self.options.loras:  # LoRAs change the images: their fingerprints and scales are part of every key
            from idrift.models.lora import lora_label

            specs = [spec.replace(loras=lora_label(self.options.loras)) for spec in specs]
        return specs if label == EAGER else [spec.replace(acceleration=label) for spec in specs]

    def run_claim(self, claim: Claim, progress: bool = False) -> ClaimResult:
        specs = self.specs(claim)
        unable = {s.acceleration: self.plan_reason(s.acceleration) for s in specs}  # paths this device cannot take
        specs = [s for s in specs if unable[s.acceleration] is None]
        self.spec_keys[claim.id] = [s.key for s in specs]
        records = self.runner.ensure(specs, claim.metrics, desc=claim.id, progress=progress)
        self.refresh_acceleration_provenance()
        result = evaluate(claim, records, aggregation=self.options.aggregation)
        result.notes += [f"not run here: {reason}" for reason in dict.fromkeys(r for r in unable.values() if r)]
        self.results[claim.id] = result
        self.outcomes[claim.id] = check_expectations(result, self.profile, SKIP_REASONS)
        return result

    # ---- baseline ------------------------------------------------------------------------------
    @cached_property
    def baseline(self):
        from idrift.baselines.io import baselines_dir, load_baseline, resolve_baseline

        name = self.options.baseline or DEFAULT_BASELINE[self.profile]
        return load_baseline(resolve_baseline(name, baselines_dir()))

    def gate(self, result: ClaimResult) -> list:
        """The gate's rows for this claim against the baseline (idrift.baselines.judge.gate_claim)."""
        from idrift.baselines.judge import gate_claim

        rows = gate_claim(result, self.baseline, profile=self.profile, candidate_gpu=self.provenance.get("gpu"))
        if result.claim.id in self.baseline.claims:
            self.verdicts[result.claim.id] = rows
        return rows

    def provenance_notes(self) -> list[str]:
        from idrift.baselines.provenance import provenance_mismatches

        return provenance_mismatches(self.baseline.provenance, self.provenance)
