"""One benchmark session: the profile's models, identities, metrics, store and baseline, built once.

Shared by the pytest plugin (`pytest benchmarks`) and the `idrift run` command, so both run the
same code. Everything heavy is built on first use: collecting the benchmarks builds no model.

A claim's arm may name its numerical path (`Arm.acceleration`: the fast_paths claim); every other arm
runs on the path the session-wide options name (`--idrift-accelerate`, `--idrift-memory`,
`--idrift-step-cache`: an idrift.accel.plan.AccelerationPlan). The label goes into every RunSpec (so the
store never mixes accelerated images with the reference path's) and its provenance into `provenance`;
idrift.session_paths builds one pipeline per label when needed.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from idrift.baselines.io import baselines_dir
from idrift.claims import Claim
from idrift.config import (
    ACCELERATE_MODES,
    EAGER,
    MEMORY_MODES,
    PROFILE_DEFAULTS,
    PROFILES,
    step_cache_threshold,
)
from idrift.errors import IdriftError
from idrift.evaluate import (
    ClaimResult,
    ExpectationOutcome,
    check_expectations,
    evaluate,
)
from idrift.evaluate_fast import speedup_rounds
from idrift.provenance import dist_version
from idrift.runner import Identity, RunContext, Runner, specs_for
from idrift.session_paths import PathsMixin, options_plan, timed_once

# The named baselines: the checkout's baselines/ or an installed wheel's copy (idrift.baselines.io.baselines_dir).
REPO_BASELINES = baselines_dir()
DEFAULT_BASELINE = {"tiny": "tiny-cpu", "synthetic": "h200-synthetic", "real": "paper"}
PROVENANCE_PACKAGES = ("torch", "diffusers", "transformers", "insightface", "onnxruntime", "onnxruntime-gpu",
                       "lpips", "dlib-bin", "numpy", "scipy", "idrift")

# Why a profile cannot judge identity and LPIPS claims, and what to do: printed once per skipped claim.
SKIP_REASONS = {
    "tiny": "tiny random models make no faces: identity/LPIPS claims need --idrift-profile real with the FLUX, "
            "InfiniteYou and antelopev2 weights (see `idrift weights check`)",
    "synthetic": "synthetic random weights make no faces: identity/LPIPS claims need --idrift-profile real with the "
                 "FLUX, InfiniteYou and antelopev2 weights (see `idrift weights check`)",
}


def package_versions() -> dict[str, str]:
    return {name: version for name in PROVENANCE_PACKAGES if (version := dist_version(name))}


def gpu_name(device: str | None = None) -> str | None:
    """The name of the GPU that `device` ("cuda", "cuda:1"; None: the current GPU) is; None off CUDA."""
    import torch

    if not torch.cuda.is_available() or (device is not None and not str(device).startswith("cuda")):
        return None
    return torch.cuda.get_device_name(torch.device(device) if device else None)


def kps_from_box(box) -> np.ndarray:
    """Five keypoints at typical positions inside a face box. Used only where no detector runs
    (synthetic references), since the keypoints then only place the control drawing."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    rel = np.array([[0.32, 0.40], [0.68, 0.40], [0.50, 0.58], [0.36, 0.76], [0.64, 0.76]], dtype=np.float32)
    return rel * np.array([w, h], dtype=np.float32) + np.array([x1, y1], dtype=np.float32)


@dataclass
class SessionOptions:
    profile: str = "tiny"
    tier: str = "smoke"
    baseline: str | None = None
    store: str | None = None
    fresh: bool = False
    require_real: bool = False
    strict: bool = False  # INCONCLUSIVE claims fail (--idrift-strict, idrift run --strict)
    update_baselines: bool = False
    identities: str | None = None  # manifest path; None: the built-in set
    aggregation: str = "zero"
    shard: tuple[int, int] | None = None
    weights: dict = field(default_factory=dict)  # --idrift-flux-dev etc. (idrift.models.paths)
    cache_dir: str | None = None
    device: str | None = None
    accelerate: str = "eager"  # ACCELERATE_MODES
    step_cache: float | None = None  # First-Block-Cache threshold; None: no step cache
    memory: str = "off"  # MEMORY_MODES
    allow_lossy_baselines: bool = False  # let --idrift-update-baselines write from a lossy pipeline
    batch_size: int = 1  # samples whose runs differ only in the seed, generated together
    loras: tuple = ()  # --idrift-lora / --lora PATH[:SCALE] values (idrift.models.lora), loaded on every backbone
    rounds: int | None = None  # latency rounds per arm after warm-up; None: by device (idrift.metrics.latency)
    warmup_rounds: int | None = None  # latency warm-up rounds per arm; None: by device
    command: str = "pytest"  # whose options the messages name: "pytest" (--idrift-X) or "idrift run" (--X)
    invocation: str = ""  # the command line that made this session, as a blessed baseline records it

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise IdriftError(f"--idrift-profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise IdriftError(f"{self.flag('batch-size')} must be a whole number >= 1, got {self.batch_size!r}"
                              + (" [env IDRIFT_BATCH_SIZE]" if self.command == "pytest" else ""))
        for name, value, least in (("rounds", self.rounds, 1), ("warmup-rounds", self.warmup_rounds, 0)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
                env = " [env IDRIFT_" + name.upper().replace("-", "_") + "]" if self.command == "pytest" else ""
                raise IdriftError(f"{self.flag(name)} must be a whole number >= {least}, got {value!r}{env}")
        if self.tier not in ("smoke", "full"):
            raise IdriftError(f"--idrift-tier must be smoke or full, got {self.tier!r}")
        if self.accelerate not in ACCELERATE_MODES:
            raise IdriftError(f"--idrift-accelerate must be one of {', '.join(ACCELERATE_MODES)}, "
                              f"got {self.accelerate!r} [env IDRIFT_ACCELERATE]")
        if self.memory not in MEMORY_MODES:
            raise IdriftError(f"--idrift-memory must be one of {', '.join(MEMORY_MODES)}, "
                              f"got {self.memory!r} [env IDRIFT_MEMORY]")
        try:
            self.step_cache = step_cache_threshold(self.step_cache)
        except ValueError as exc:
            raise IdriftError(f"--idrift-step-cache: {exc} [env IDRIFT_STEP_CACHE]") from None
        from idrift.models.lora import parse_loras

        try:
            self.loras = parse_loras(self.loras)  # a bad path or scale: one line, before anything loads
        except IdriftError as exc:
            raise IdriftError(f"{self.flag('lora')}: {exc}") from None
        if self.update_baselines and self.lossy and not self.allow_lossy_baselines:
            raise IdriftError(
                f"--idrift-update-baselines with a lossy pipeline ({' '.join(self.acceleration_args())}): identity "
                "baselines need a lossless pipeline. Drop the lossy options (--idrift-accelerate lossy, "
                "--idrift-step-cache, --idrift-memory offload-8bit), or pass --idrift-allow-lossy-baselines to "
                "write a baseline whose provenance says lossy")

    @property
    def lossy(self) -> bool:
        """True when an option changes what the pipeline computes (fp8, step cache, 8-bit weights)."""
        return self.plan.lossy

    @property
    def plan(self):
        """The idrift.accel.plan.AccelerationPlan these options name; its label is the RunSpec.acceleration of
        every arm that names no path of its own. From the options, so that collecting builds no pipeline."""
        return options_plan(self)

    def flag(self, name: str, command: str | None = None) -> str:
        """The command-line option `name` ("accelerate") as `command` (default: this session's) spells it."""
        return f"--{name}" if (command or self.command) == "idrift run" else f"--idrift-{name}"

    def acceleration_args(self, command: str | None = None) -> list[str]:
        """The options that give this acceleration (for messages, a baseline's command)."""
        args = [] if self.accelerate == "eager" else [self.flag("accelerate", command), self.accelerate]
        args += [] if self.step_cache is None else [self.flag("step-cache", command), f"{self.step_cache:g}"]
        args += [] if self.memory == "off" else [self.flag("memory", command), self.memory]
        return args


class BenchmarkSession(PathsMixin):
    def __init__(self, options: SessionOptions):
        self.options = options
        self.profile = options.profile
        self.results: dict[str, ClaimResult] = {}
        self.outcomes: dict[str, list[ExpectationOutcome]] = {}
        self.verdicts: dict[str, list] = {}
        # arm name -> what time_arm stored with the arm's sample (idrift.metrics.latency.latency_values): a copy
        # for results.json; evaluate reads the timings from the store's records.
        self.latency: dict[str, dict] = {}

    # ---- places -----------------------------------------------------------------------------
    @cached_property
    def cache_dir(self) -> Path:
        """Caches (the built-in identity set, a private torch hub dir): the same folder from any working
        directory, so that a run resumes from anywhere (idrift.data.identities.user_cache_dir)."""
        from idrift.data.identities import user_cache_dir

        path = Path(self.options.cache_dir) if self.options.cache_dir else user_cache_dir()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IdriftError(f"cache folder {path} cannot be created ({exc.strerror or exc}); set IDRIFT_CACHE "
                              "to a folder you can write to") from None
        return path

    @cached_property
    def store_path(self) -> Path:
        """--idrift-store, else <IDRIFT_CACHE or ./.idrift>/store-<profile> (the documented default)."""
        if self.options.store:
            return Path(self.options.store)
        return Path(os.environ.get("IDRIFT_CACHE") or Path.cwd() / ".idrift") / f"store-{self.profile}"

    def wipe_store(self) -> None:
        """--idrift-fresh: delete the store folder, once, without opening it (the pytest-xdist controller
        calls this before its workers start; opening would build the models for the run's provenance)."""
        if self.store_path.exists():
            shutil.rmtree(self.store_path)
        self.options.fresh = False  # done: `store` must not wipe again

    @cached_property
    def store(self):
        from idrift.store import ResultsStore

        if self.options.fresh:
            self.wipe_store()
        store = ResultsStore(self.store_path)
        store.start_run(provenance=self.provenance)
        return store

    # ---- models and data ----------------------------------------------------------------------
    @cached_property
    def device(self) -> str:
        import torch

        wanted = self.options.device or PROFILE_DEFAULTS[self.profile].device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        if wanted == "cuda":
            from idrift.distributed import worker_cuda_device

            wanted = worker_cuda_device() or wanted  # an xdist worker's own GPU, by index
        return wanted

    @cached_property
    def bundle(self):
        if self.profile == "tiny":
            from idrift.models.tiny import build_tiny_bundle

            bundle = build_tiny_bundle(device=self.device)
        elif self.profile == "synthetic":
            from idrift.models.synthetic import build_synthetic_bundle

            bundle = build_synthetic_bundle(device=self.device)
        else:
            from idrift.models.real import load_real_bundle

            bundle = load_real_bundle(self.weight_paths, device=self.device)
        if self.options.loras:
            from idrift.models.lora import apply_loras

            apply_loras(bundle, self.options.loras)  # as InfiniteYou's load_loras: peft adapters on each backbone
        return bundle

    def check_real_weights(self) -> None:
        """Every missing or malformed weight, in one error, before any work starts."""
        from idrift.errors import WeightsError
        from idrift.models.paths import check_weights, weights_problem_report
        from idrift.models.verify import verify_statuses

        report = weights_problem_report(verify_statuses(check_weights(self.weight_paths)))
        if report:
            raise WeightsError(report)

    @cached_property
    def weight_paths(self):
        from idrift.models.paths import resolve_weight_paths

        return resolve_weight_paths(self.options.weights)

    @cached_property
    def face_backend(self):
        """dlib (real weights from the package index) on tiny; antelopev2 on real; none on synthetic."""
        from idrift.faces import make_backend

        if self.profile == "tiny":
            return make_backend("dlib")
        if self.profile == "real":
            return make_backend("arcface", model_root=str(self.weight_paths.location("antelopev2")))
        return None

    @cached_property
    def identities(self) -> list[Identity]:
        from idrift.faces.image_io import load_image
        from idrift.faces.select import find_reference

        if self.profile == "synthetic":
            # Random references of the real size: identity is never judged on random weights.
            rng = np.random.default_rng(0)
            return [Identity(f"synthetic{i}", rng.integers(0, 256, (512, 512, 3), dtype=np.uint8),
                             kps_from_box((128, 96, 384, 416))) for i in range(28)]
        from idrift.data.identities import builtin_identity_set, load_manifest

        manifest = load_manifest(self.options.identities or builtin_identity_set(self.cache_dir))
        out = []
        for entry in manifest.entries:
            path = manifest.image_file(entry)
            image = load_image(path)
            found = find_reference(self.face_backend, image, source=str(path))
            out.append(Identity(entry.identity_id, image, np.asarray(found.face.kps, dtype=np.float32), found.n_faces))
        return out

    @cached_property
    def identity_metric(self):
        if self.face_backend is None:
            return None
        from idrift.metrics.identity import IdentitySimilarity

        return IdentitySimilarity(self.face_backend, aggregation=self.options.aggregation)

    @cached_property
    def agreement_metric(self):
        """dlib's recogniser beside antelopev2 on `real`: the run reports how well the two agree."""
        if self.profile != "real":
            return None
        from idrift.faces import make_backend
        from idrift.metrics.identity import IdentitySimilarity

        try:
            return IdentitySimilarity(make_backend("dlib"), aggregation=self.options.aggregation)
        except ImportError:  # dlib is an install dependency; a trimmed environment just skips this
            return None

    @cached_property
    def lpips_metric(self):
        if self.profile == "synthetic":
            return None
        from idrift.metrics.lpips import LPIPSMetric

        # Offline (tiny) the VGG backbone can only be random: its numbers are golden values, not LPIPS.
        if self.profile != "real":
            return LPIPSMetric(pretrained_backbone=False, device=self.device, size=64)  # tiny images are 64 px
        # torchvision reads VGG16 from <hub dir>/checkpoints/: point a private hub dir at the file that
        # --idrift-vgg16 names, for the build only.
        import torch

        from idrift.models.paths import VGG16_FILE

        hub = self.cache_dir / "torch-hub"
        (hub / "checkpoints").mkdir(parents=True, exist_ok=True)
        link = hub / "checkpoints" / VGG16_FILE
        link.unlink(missing_ok=True)
        given = Path(self.weight_paths.location("vgg16"))  # the file, or a folder holding it
        link.symlink_to((given / VGG16_FILE if given.is_dir() else given).resolve())
        previous = torch.hub.get_dir()
        torch.hub.set_dir(str(hub))
        try:
            return LPIPSMetric(pretrained_backbone=True, device=self.device, size=256)
        finally:
            torch.hub.set_dir(previous)

    def registered_metric(self, name: str):
        """The registered metric `name` (idrift.metrics.REGISTRY), built on first use; None where this
        profile cannot measure it."""
        built = self.__dict__.setdefault("_registered_metrics", {})
        if name not in built:
            from idrift.metrics import MetricSetup, build_metric

            built[name] = build_metric(name, MetricSetup(profile=self.profile, device=self.device,
                                                         cache_dir=self.cache_dir, weights=self.weight_paths))
        return built[name]

    def metrics_provenance(self) -> dict:
        """Each registered metric the claims use, by name: its provenance (model fingerprints, variant)."""
        from idrift.claims import CLAIMS
        from idrift.metrics import REGISTRY

        used = [name for name in REGISTRY if any(name in claim.metrics for claim in CLAIMS)]
        return {name: metric.provenance() for name in used if (metric := self.registered_metric(name)) is not None}

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
        prov = {
            "profile": self.profile, "tier": self.options.tier, "gpu": gpu_name(self.device), "device": self.device,
            "packages": package_versions(), "python": platform.python_version(), "machine": platform.machine(),
            "aggregation": self.options.aggregation,
        }
        from idrift.provenance import onnxruntime_provenance

        onnxruntime = onnxruntime_provenance()  # the module imported, beside the wheels' metadata in packages
        if onnxruntime is not None:
            prov["onnxruntime"] = onnxruntime
        if self.profile == "real":
            # From configs and file headers, without loading a tensor.
            from idrift.models.paths import check_weights

            prov["weights"] = {s.component: s.fingerprint for s in check_weights(self.weight_paths) if s.fingerprint}
        else:
            prov["weights"] = dict(self.bundle.fingerprints)
        if self.face_backend is not None:
            prov["face_backend"] = self.face_backend.provenance()  # onnxruntime providers on `real`
        if self.lpips_metric is not None:
            prov["lpips"] = self.lpips_metric.provenance()
        prov["metrics"] = self.metrics_provenance()  # registered metrics (idrift.metrics.REGISTRY): CLIP-T's model
        prov["acceleration"] = self.acceleration_provenance()  # every stored number says how it was computed
        from idrift.pipeline.infinite_you import noise_provenance

        prov["noise"] = noise_provenance(self.device)  # seed S's noise depends on the generator's device type
        if self.options.loras:
            from idrift.models.lora import lora_provenance

            prov["loras"] = lora_provenance(self.options.loras)
        several = {i.id: i.n_faces for i in self.identities if i.n_faces > 1}
        if several:  # references with several faces are used by their largest one: say which
            prov["reference_faces"] = several
        if self.options.memory != "off":
            prov["memory"] = self.memory_provenance()
        return prov

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
        records = self.runner.ensure(specs, claim.metrics, desc=claim.id, progress=progress)
        self.refresh_acceleration_provenance()
        result = evaluate(claim, records, aggregation=self.options.aggregation)
        result.notes += [f"not run here: {reason}" for reason in dict.fromkeys(r for r in unable.values() if r)]
        self.results[claim.id] = result
        self.outcomes[claim.id] = check_expectations(result, self.profile, SKIP_REASONS)
        return result

    def timed_spec(self, arm):
        """The sample of `arm` its timing is stored with: the first sample of the timed claim (one that
        measures `latency`: latency, fast_paths) holding the arm."""
        from idrift.claims import CLAIMS
        from idrift.evaluate import arm_of

        for claim in CLAIMS:
            if arm in claim.arms and "latency" in claim.metrics:
                for spec in self.specs(claim):
                    if arm_of(spec.as_dict(), (arm,)) is not None:
                        return spec
        raise IdriftError(f"arm {arm.name} is not an arm of a timed claim (latency, fast_paths); time one of theirs")

    def latency_rounds(self) -> tuple[int, int]:
        """(warm-up rounds, rounds) of each timed arm: the options', else the device's defaults."""
        from idrift.metrics.latency import default_rounds

        return default_rounds(self.device, self.options.warmup_rounds, self.options.rounds)

    def time_arm(self, arm, benchmark=None) -> dict:
        """Latency of one arm end to end on its numerical path (text, identity and control encodings
        included: caches are cleared every round), timed by idrift.metrics.latency.time_rounds (through
        pytest-benchmark when `benchmark` is its fixture) and stored with the arm's sample as the metric
        `latency`, which evaluate reads like any other. A path other than eager also records its first
        call (compile and capture included) and, as the metric `reference_diff`, its image against the
        eager image of the same spec. The sample is generated first when the store lacks it."""
        from idrift.metrics.latency import LATENCY_METRIC, LATENCY_VERSION, time_rounds

        spec = self.timed_spec(arm)
        reference = self.runner.reference(spec.identity)
        pipe = self.pipeline_for(spec.acceleration)

        def generate(timer):
            pipe.clear_caches()
            return pipe(spec, reference, timer=timer)

        # The path's first call of this spec, before anything else runs it: compilation and capture included.
        first_s = timed_once(generate, self.device) if spec.acceleration != EAGER else None
        [record] = self.runner.ensure([spec], ("pixels",), progress=False)  # the sample the timing belongs to
        if record["status"] != "ok":
            raise IdriftError(f"latency of {arm.name}: its sample {spec.key} failed ({record['error']}); "
                              "nothing to time")
        warmup_rounds, rounds = self.latency_rounds()
        extra = {"idrift_arm": arm.name, "idrift_spec": spec.as_dict(), "idrift_provenance": self.provenance}
        values = time_rounds(generate, device=self.device, rounds=rounds, warmup_rounds=warmup_rounds,
                             benchmark=benchmark, extra_info=extra)
        values.update(self.path_timing(spec, pipe, values["seconds"], first_s))
        self.store.put_metrics(spec.key, LATENCY_METRIC, LATENCY_VERSION, values)
        self.measure_reference_diff(spec)
        self.latency[arm.name] = values
        return values

    def benchmark_arm(self, benchmark, arm) -> None:
        """Latency of one arm through pytest-benchmark (its JSON and comparisons work): `time_arm`."""
        self.time_arm(arm, benchmark)

    # ---- baseline -----------------------------------------------------------------------------
    @cached_property
    def baseline(self):
        from idrift.baselines.io import load_baseline, resolve_baseline

        name = self.options.baseline or DEFAULT_BASELINE[self.profile]
        path = resolve_baseline(name, REPO_BASELINES)
        return load_baseline(path)

    def gate(self, result: ClaimResult) -> list:
        """Compare every figure the baseline holds for this claim; paired where both have samples.
        The words follow idrift.verdicts: see gate_row_status for NOT JUDGEABLE and not informative."""
        from idrift.baselines.gate import compare_metric, ratio_gate

        claim_base = self.baseline.claims.get(result.claim.id)
        verdicts = []
        if claim_base is None:
            return verdicts
        for metric_id, base in sorted(claim_base.metrics.items()):
            if metric_id not in result.figures:
                continue
            figure = result.intervals.get(metric_id)
            # Golden values of random weights (a tiny run against a tiny baseline) are deterministic: the
            # point is compared. Against other samples (the paper's, a real run's) the run's interval counts.
            sampled = self.profile == "real" or self.baseline.provenance.get("profile") != self.profile
            interval_of = figure if sampled else None
            rounds = speedup_rounds(result, metric_id)  # a ratio of timed rounds: the ratio test
            if rounds is not None:
                verdict = ratio_gate(*rounds, base.aggregate, tolerance=base.tolerance, tolerance_kind=base.tolerance_kind,
                                     direction=base.direction, claim=result.claim.id, metric=metric_id)
            else:
                samples = gate_samples(result, metric_id)
                verdict = compare_metric(
                    result.claim.id, metric_id, base, candidate_aggregate=result.figures[metric_id],
                    candidate_samples=samples, baseline_gpu=self.baseline.provenance.get("gpu"),
                    candidate_gpu=self.provenance.get("gpu"),
                    candidate_interval=interval_of.ci if interval_of is not None else None,
                    candidate_sem=interval_of.sem if interval_of is not None else None,
                    candidate_n=figure.n if figure is not None else None,
                )
            verdict.baseline_n = base.n
            gate_row_status(verdict, figure, self.profile, self.baseline.provenance.get("profile"), base)
            verdicts.append(verdict)
        self.verdicts[result.claim.id] = verdicts
        return verdicts

    def provenance_notes(self) -> list[str]:
        from idrift.baselines.gate import provenance_mismatches

        return provenance_mismatches(self.baseline.provenance, self.provenance)


def gate_row_status(verdict, figure, profile: str, baseline_profile: str | None, base) -> None:
    """The two words a gate row gets besides the interval's (idrift.verdicts.gate_word):

    - NOT JUDGEABLE: an identity or LPIPS figure of random weights (tiny, synthetic) against numbers of
      another profile (the paper's): random weights make no faces, so the comparison says nothing.
      CPU timings of tiny models against a GPU's numbers are NOT JUDGEABLE too.
    - not informative: an identity or LPIPS figure of random weights that cannot move on this profile
      (every value one constant, e.g. ID_sim 0 of faceless images, against the same constant): it
      passes trivially and is not counted as a pass.
    A baseline whose direction contradicts the metric's declared one (idrift.verdicts.METRICS) gets a note.
    """
    from idrift import verdicts

    declared = verdicts.direction_of(verdict.metric)
    if base.direction != "equal" and base.direction != declared:
        verdict.notes.append(f"the baseline says {base.direction}, idrift declares {declared} for this metric")
    part = verdicts.part_of(verdict.metric)
    if part == "latency" and profile == "tiny" and baseline_profile != profile:
        verdict.status = "not judgeable"
        verdict.notes.insert(0, "CPU timings of tiny models say nothing of a GPU's speed: latency is judged on "
                                "the synthetic and real profiles")
        return
    if profile == "real" or part not in ("identity", "LPIPS", "text alignment"):
        return
    if baseline_profile != profile:
        verdict.status = "not judgeable"
        verdict.notes.insert(0, SKIP_REASONS.get(profile, f"the {profile} profile cannot judge identity"))
        return
    constant = figure is not None and figure.constant and figure.value == base.aggregate
    if constant and (not base.samples or len(set(base.samples.values())) == 1):
        verdict.status = "not informative"
        verdict.notes.insert(0, f"{figure.value:g} on both sides and on every sample: cannot move on the {profile} profile")


def gate_samples(result: ClaimResult, metric_id: str) -> dict[str, float] | None:
    """Per-sample values keyed identity|prompt|seed|config, as baselines store them."""
    samples = result.samples.get(metric_id)
    if not samples:
        return None
    config = metric_id.replace("|", "/")
    return {f"{key}|{config}": value for key, value in samples.items()}

