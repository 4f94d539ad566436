"""Speed-ups of idrift.pipeline.fast against the eager reference, measured in the same run.

The synthetic profile (real-size random weights on one GPU) or the real one (the same sizes: the same
timings, plus identity). In this order, on one pipeline:

  reference  schnell-4, dev-28 end to end (pytest-benchmark, warm-up excluded, caches cleared every
             round as in benchmarks/test_latency.py); a noise floor (the same specs with the
             memory-efficient instead of the flash attention kernel: pure bf16 reassociation); the
             9-budget drift curve as separate runs (naive) and as one trajectory run; batches of 2
             and 4 schnell-4 samples (seeds differ; images/s); dev-28 with First-Block-Cache
             (idrift.pipeline.step_cache, LOSSY, threshold IDRIFT_SPEED_FBC_THRESHOLD, default 0.12;
             its skip rate is reported: on random weights it says nothing of real FLUX);
  lossless   accelerate(pipe, "lossless"): compile cost (first calls minus steady state, split into the
             blocks' regional compilation with their CUDA graph captures, the VAE, and the rest; the
             inductor cache's state, cold or warm, is recorded), schnell-4, dev-28, the trajectory, and
             the same three with First-Block-Cache on top (fbc-*: LOSSY);
  lossy      accelerate(pipe, "lossy"): fp8 matmuls on top, labelled lossy everywhere; the same arms.

Each arm records seconds, the stage breakdown, peak GPU memory and, for the accelerated modes, the
pixel and latent difference from the reference image of the same spec; where a face metric can run (the
real profile's antelopev2; dlib on the tiny CPU dry run), also the identity shift
(idrift.metrics.identity.identity_shift): ID_sim of the image and its difference from the reference
path's (the noise arms give that difference's bf16 floor). Synthetic weights make no faces: the summary
says so instead. The last test prints the table and writes it as JSON (`IDRIFT_SPEED_OUT`, default
.idrift/speed-summary.json; rewritten after every arm, so a run cut short still leaves what it
measured). It asserts that lossless stays within a few times the noise floor; the issue's speed
targets are reported, and fail the run only with IDRIFT_SPEED_STRICT=1.
`IDRIFT_SPEED_BUDGET_S` (seconds for this module) skips the arms that no longer fit, saying so.

The lossy arms replace the bundle's weights with fp8: afterwards this module drops the session's bundle
and pipeline, so anything later in the same pytest run builds fresh bf16 ones.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pytest

from idrift.baselines.gate import format_number
from idrift.baselines.speed import base_arm, gate_speed, update_speed_baseline
from idrift.claims import CLAIMS_BY_ID, DRIFT_STEPS
from idrift.errors import BaselineError

MODES = ("reference", "lossless", "lossy")
# (mode, arm) in the order they must run: the accelerations are applied in place, lossy irreversibly.
PLAN = (
    ("reference", "schnell-4"), ("reference", "dev-28"), ("reference", "noise-schnell-4"),
    ("reference", "noise-dev-28"), ("reference", "drift-naive"), ("reference", "drift-trajectory"),
    ("reference", "batch2-schnell-4"), ("reference", "batch4-schnell-4"), ("reference", "fbc-dev-28"),
    ("lossless", "schnell-4"), ("lossless", "dev-28"), ("lossless", "drift-trajectory"),
    ("lossless", "fbc-schnell-4"), ("lossless", "fbc-dev-28"), ("lossless", "fbc-drift-trajectory"),
    ("lossy", "schnell-4"), ("lossy", "dev-28"), ("lossy", "drift-trajectory"),
    ("lossy", "fbc-schnell-4"), ("lossy", "fbc-dev-28"), ("lossy", "fbc-drift-trajectory"),
)
# Rough seconds an arm needs on an H100 (compile included where it happens): used to skip, with a
# reason, what cannot finish inside IDRIFT_SPEED_BUDGET_S.
NEEDS_S = {"schnell-4": 10, "dev-28": 35, "noise-schnell-4": 3, "noise-dev-28": 10, "drift-naive": 40,
           "drift-trajectory": 12, "batch2-schnell-4": 12, "batch4-schnell-4": 20, "fbc-dev-28": 30,
           "fbc-schnell-4": 10, "fbc-drift-trajectory": 12}
FBC_THRESHOLD = float(os.environ.get("IDRIFT_SPEED_FBC_THRESHOLD", "0.12"))


def batch_of(arm: str) -> int:
    return int(arm.partition("-")[0].removeprefix("batch")) if arm.startswith("batch") else 1
COMPILE_NEEDS_S = 150
TARGETS = {  # the targets (seconds unless named)
    "lossless schnell-4 s": ("lossless", "schnell-4", "<=", 0.65),
    "lossless schnell-4 speedup": ("lossless", "schnell-4", "speedup>=", 1.5),
    "lossless dev-28 s": ("lossless", "dev-28", "<=", 4.5),
    "lossy schnell-4 s": ("lossy", "schnell-4", "<=", 0.40),
    "lossy + FBC schnell-4 s": ("lossy", "fbc-schnell-4", "<=", 0.40),
    "regional compile of the blocks s (lossless)": ("lossless", None, "blocks_compile<=", 60.0),
    "trajectory / naive (lossless)": ("lossless", "drift-trajectory", "ratio<=", 1 / 8),
    "trajectory / naive (lossless + FBC)": ("lossless", "fbc-drift-trajectory", "ratio<=", 1 / 8),
}
# first-call stages (idrift.metrics.latency.STAGES) -> the compile cost they carry
COMPILE_PARTS = {"blocks": ("backbone", "infusenet"), "vae": ("control_image", "vae_decode"),
                 "other": ("text_encoding", "id_embedding")}


@pytest.fixture(scope="module")
def speed(idrift_session):
    if idrift_session.profile == "tiny" and not os.environ.get("IDRIFT_SPEED_ALLOW_CPU"):
        pytest.skip("speed-ups are measured at real sizes on a GPU (got --idrift-profile tiny); run: pytest "
                    "benchmarks/test_speed.py --idrift-profile synthetic (or real, which adds the identity shift)")
    import torch

    if not torch.cuda.is_available() and not os.environ.get("IDRIFT_SPEED_ALLOW_CPU"):
        pytest.skip("speed-ups need a CUDA GPU (torch.compile with inductor, cuDNN attention, fp8 matmuls)")
    state = SpeedState(idrift_session)
    yield state
    state.pipeline.__dict__.pop("decode", None)  # our recording wrapper
    if state.mode == "lossless":
        from idrift.pipeline.fast import restore

        restore(state.pipeline)
    if state.mode == "lossy":  # fp8 weights: nobody after us may use this bundle
        state.pipeline = None
        for name in ("pipeline", "bundle"):
            idrift_session.__dict__.pop(name, None)
        context = idrift_session.__dict__.get("context")
        if context is not None:
            context._pipeline = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class SpeedState:
    def __init__(self, session):
        import torch

        self.torch = torch
        self.session = session
        self.started = time.monotonic()
        self.budget = float(os.environ.get("IDRIFT_SPEED_BUDGET_S", "inf"))
        self.out = Path(os.environ.get("IDRIFT_SPEED_OUT") or session.cache_dir / "speed-summary.json")
        self.pipeline = session.pipeline
        self.device = str(session.device)
        [self.schnell] = [s for s in session.specs(CLAIMS_BY_ID["latency"]) if s.backbone == "schnell"][:1]
        [self.dev] = [s for s in session.specs(CLAIMS_BY_ID["latency"]) if s.backbone == "dev"][:1]
        self.reference = session.runner.reference(self.schnell.identity)
        self.mode = "reference"
        self.cudnn_ok = True
        self.results: dict[str, dict] = {m: {} for m in MODES}
        self.images: dict[tuple, dict] = {}  # (mode, arm) -> {"image", "latents", "trajectory"}
        self.acceleration: dict[str, dict] = {}
        self.compile: dict[str, dict] = {}
        self.rates: dict | None = None  # this device's product and attention rates (idrift.pipeline.roofline)
        self.identity = IdentityCheck(session, self.reference)
        self._latents: list = []
        original = self.pipeline.decode

        def decode(packed, latent_h, latent_w, spec):  # records what each image was decoded from
            self._latents.append(packed.detach().float().cpu())
            return original(packed, latent_h, latent_w, spec)

        self.pipeline.decode = decode
        command = f"pytest benchmarks/test_speed.py --idrift-profile {session.profile}"
        batch_seeds = {self.schnell.seed + k for _, arm in PLAN for k in range(batch_of(arm))}
        self.provenance = dict(session.provenance, seeds=sorted(batch_seeds | {self.dev.seed}),
                               command=command + (" --idrift-update-baselines" if session.options.update_baselines else ""))

    def remaining(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def spec_of(self, arm: str):
        return self.schnell if "schnell" in arm else self.dev

    # ---- modes ------------------------------------------------------------------------------
    def enter(self, mode: str) -> None:
        from idrift.pipeline.fast import accelerate, configure_compile_cache, restore

        if mode == self.mode:
            return
        if MODES.index(mode) < MODES.index(self.mode):
            pytest.skip(f"{mode} cannot follow {self.mode} (the accelerations are applied in place)")
        torch = self.torch
        if self.mode != "reference":
            restore(self.pipeline)
        if mode == "lossy":
            torch._dynamo.reset()  # lossless graphs hold no weights we need; let the bf16 ones go
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        # IDRIFT_SPEED_ALLOW_CPU (a dry run of this module on the tiny CPU profile): no fp8 there.
        options = {"fp8": False} if self.device == "cpu" else {}
        if not self.cudnn_ok:
            options["cudnn_attention"] = False
        cache_files = sum(len(files) for _, _, files in os.walk(configure_compile_cache()))
        report = accelerate(self.pipeline, mode, **options)
        self.mode = mode
        self.acceleration[mode] = report
        compile_info = {"setup_s": report["setup_s"], "first_call_s": {}, "first_call_stages_s": {},
                        "compile_cache": "warm" if cache_files else "cold", "compile_cache_files": cache_files}
        try:
            self._warm_up(compile_info)
        except Exception as exc:
            if mode != "lossless" or "cudnn_sdpa" not in report["techniques"]:
                raise
            compile_info["retry_reason"] = f"{type(exc).__name__}: {str(exc)[:500]}"
            self.cudnn_ok = False
            restore(self.pipeline)
            torch._dynamo.reset()
            report = accelerate(self.pipeline, mode, cudnn_attention=False)
            self.acceleration[mode] = report
            compile_info.update(setup_s=report["setup_s"], first_call_s={}, first_call_stages_s={})
            self._warm_up(compile_info)
        if self.pipeline.call_graphs is not None:
            compile_info["cuda_graphs"] = self.pipeline.call_graphs.stats()  # captured in the first calls
        self.compile[mode] = compile_info

    def _warm_up(self, compile_info: dict) -> None:
        from idrift.metrics.latency import StageTimer
        from idrift.pipeline.fast import warm_up

        for spec in (self.schnell, self.dev):  # compiles every shape the arms use
            self.pipeline.clear_caches()
            timer = StageTimer(self.device)
            seconds = warm_up(self.pipeline, spec, self.reference, timer=timer)
            compile_info["first_call_s"][spec.config_label] = seconds
            compile_info["first_call_stages_s"][spec.config_label] = timer.seconds

    def take_latents(self) -> list:
        out, self._latents = self._latents, []
        return out

    # ---- summary ----------------------------------------------------------------------------
    def compile_seconds(self, mode: str) -> float | None:
        """First calls minus the steady-state median of the same specs."""
        info = self.compile.get(mode)
        if info is None:
            return None
        total = info["setup_s"]
        for arm, spec in (("schnell-4", self.schnell), ("dev-28", self.dev)):
            steady = self.results[mode].get(arm, {}).get("median_s")
            if steady is None:
                return None
            total += info["first_call_s"][spec.config_label] - steady
        return total

    def compile_parts(self, mode: str) -> dict | None:
        """compile_seconds split by stage group: the regional compilation of the blocks (with their CUDA graph
        captures), the VAE, and the rest (text and identity encoders; accelerate's own setup)."""
        info = self.compile.get(mode)
        if info is None or self.compile_seconds(mode) is None:
            return None
        parts = {name: 0.0 for name in COMPILE_PARTS}
        parts["other"] = info["setup_s"]
        for arm, spec in (("schnell-4", self.schnell), ("dev-28", self.dev)):
            steady = self.results[mode].get(arm, {}).get("stages_s")
            if not steady:
                return None
            first = info["first_call_stages_s"][spec.config_label]
            for name, stages in COMPILE_PARTS.items():
                parts[name] += sum(first.get(stage, 0.0) - steady.get(stage, 0.0) for stage in stages)
        return parts

    def floors(self, summary) -> dict:
        """Per accelerated arm: the seconds its steps would take with every product and attention at this
        device's measured rates (bf16 products for lossless, fp8 for lossy; everything else free), and the
        image's floor with its other stages as measured (idrift.pipeline.roofline)."""
        from idrift.pipeline.roofline import bundle_step_flops, measure_rates, step_floor_s

        if self.rates is None:  # measured once, with the attention kernel order the fast paths set
            small = dict(size=256, tokens=256, heads=2, head_dim=64, repeat=2) if self.device == "cpu" else {}
            self.rates = measure_rates(self.device, **small)
        rows = {(r["mode"], r["arm"]): r for r in summary["rows"]}
        out: dict = {"rates_flop_per_s": self.rates, "arms": {}}
        flops_of: dict[str, dict] = {}  # per backbone: the same step for both modes
        for mode, matmul in (("lossless", "bf16_matmul"), ("lossy", "fp8_matmul")):
            for arm in ("schnell-4", "dev-28"):
                stages = (rows.get((mode, arm)) or {}).get("stages_s")
                if not stages or self.rates.get(matmul) is None:
                    continue
                spec = self.spec_of(arm)
                if spec.backbone not in flops_of:
                    flops_of[spec.backbone] = bundle_step_flops(self.pipeline.bundle, spec.backbone, spec.width, spec.height)
                flops = flops_of[spec.backbone]
                steps_floor = spec.steps * step_floor_s(flops, self.rates, matmul)
                steps = stages.get("infusenet", 0.0) + stages.get("backbone", 0.0)
                rest = sum(v for k, v in stages.items() if k not in ("infusenet", "backbone"))
                out["arms"][f"{mode}/{arm}"] = {
                    "step_tflop": flops["total"] / 1e12, "steps_floor_s": steps_floor, "steps_s": steps,
                    "step_efficiency": steps_floor / steps if steps else None, "floor_s": steps_floor + rest}
        return out

    def summary(self, floors: bool = False) -> dict:
        rows = []
        for mode in MODES:
            for arm, r in self.results[mode].items():
                ref = self.results["reference"].get(base_arm(arm), {})
                label = "lossy" if mode == "lossy" or arm.startswith("fbc-") else mode
                row = {"mode": mode, "label": label, "arm": arm, **r}
                per_image = r.get("per_image_s") or r.get("median_s")
                if ref.get("median_s") and per_image and (mode != "reference" or base_arm(arm) != arm):
                    row["speedup"] = ref["median_s"] / per_image
                rows.append(row)
        naive = self.results["reference"].get("drift-naive", {}).get("median_s")
        for row in rows:
            if base_arm(row["arm"]) == "drift-trajectory" and naive:
                row["ratio_to_naive_reference"] = row["median_s"] / naive
        out = {
            "rows": rows,
            "identity": self.identity.describe(),
            "compile_s": {m: self.compile_seconds(m) for m in self.compile},
            "compile_parts_s": {m: self.compile_parts(m) for m in self.compile},
            "compile_detail": self.compile,
            "acceleration": self.acceleration,
            "provenance": self.provenance,
            "drift_steps": list(DRIFT_STEPS),
        }
        if floors:
            out["floor"] = self.floors(out)
        out["targets"] = self.targets(out)
        return out

    def targets(self, summary) -> dict:
        rows = {(r["mode"], r["arm"]): r for r in summary["rows"]}
        verdicts = {}
        for name, (mode, arm, op, bound) in TARGETS.items():
            if op == "blocks_compile<=":
                value = (summary["compile_parts_s"].get(mode) or {}).get("blocks")
            else:
                row = rows.get((mode, arm), {})
                value = row.get({"<=": "median_s", "speedup>=": "speedup", "ratio<=": "ratio_to_naive_reference"}[op])
            if value is None:
                verdicts[name] = {"value": None, "bound": bound, "met": None}
            else:
                met = value >= bound if op.endswith(">=") else value <= bound
                verdicts[name] = {"value": value, "bound": bound, "met": bool(met)}
            floor = summary.get("floor", {}).get("arms", {}).get(f"{mode}/{arm}")
            if op == "<=" and floor:  # what this device could do at best: is the target within reach?
                verdicts[name]["floor_s"] = floor["floor_s"]
        return verdicts

    def write(self, floors: bool = False) -> dict:
        summary = self.summary(floors)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))
        tmp.replace(self.out)
        return summary


class IdentityCheck:
    """The identity shift of each arm's image from the reference path's image of the same spec, with the
    session's face backend (None on synthetic weights: `reason` says why nothing is measured)."""

    def __init__(self, session, reference):
        from idrift.faces.select import reference_face

        self.backend = session.face_backend
        self.reason = None if self.backend is not None else (
            f"not measured: {session.profile} random weights make no faces; run --idrift-profile real")
        self.photo = None
        if self.backend is not None:
            self.photo = reference_face(self.backend.detect(reference.image), source=f"identity {reference.key}")
        self.reference_faces: dict = {}  # reference arm -> its image's largest face (None: no face)

    def describe(self) -> dict:
        if self.backend is None:
            return {"measured": False, "reason": self.reason}
        return {"measured": True, "backend": self.backend.provenance()}

    def measure(self, mode: str, arm: str, images: dict) -> dict:
        from idrift.faces.select import largest_face
        from idrift.metrics.identity import cosine_similarity, identity_shift

        if self.backend is None or "image" not in images:
            return {}
        face = largest_face(self.backend.detect(np.asarray(images["image"])))
        if mode == "reference" and base_arm(arm) == arm:
            self.reference_faces[arm] = face
            if face is None:
                return {"id_sim": None, "identity_reason": "no face in the reference path's image"}
            return {"id_sim": cosine_similarity(self.photo.embedding, face.embedding)}
        if base_arm(arm) not in self.reference_faces:
            return {}
        shift = identity_shift(self.photo, self.reference_faces[base_arm(arm)], face)
        return {"id_sim": shift["id_sim_candidate"], "id_sim_delta": shift["id_sim_delta"],
                "id_sim_between": shift["id_sim_between"], **({"identity_reason": shift["reason"]} if "reason" in shift else {})}


def _pixel_diff(image, reference) -> dict:
    a = np.asarray(image, dtype=np.int16)
    b = np.asarray(reference, dtype=np.int16)
    d = np.abs(a - b)
    return {"pixel_max": int(d.max()), "pixel_mean": float(d.mean()), "pixel_frac_gt8": float((d > 8).mean())}


def _latent_diff(a, b) -> float:
    return float((a - b).norm() / b.norm())


def _compare(state: SpeedState, mode: str, arm: str, images: dict) -> dict:
    ref = state.images.get(("reference", base_arm(arm)))
    if ref is None or (mode == "reference" and base_arm(arm) == arm):
        return {}
    out = {}
    if "image" in images:
        out.update(_pixel_diff(images["image"], ref["image"]))
        out["latent_rel_diff"] = _latent_diff(images["latents"], ref["latents"])
    if "trajectory" in images and "trajectory" in ref:
        per_step = {k: _pixel_diff(img, ref["trajectory"][k]) for k, img in images["trajectory"].items()}
        out["trajectory_pixel_max"] = max(v["pixel_max"] for v in per_step.values())
        out["trajectory_pixel_mean"] = float(np.mean([v["pixel_mean"] for v in per_step.values()]))
    return out


@pytest.mark.parametrize("mode,arm", PLAN, ids=[f"{m}-{a}" for m, a in PLAN])
def test_speed(benchmark, speed, mode, arm):
    from idrift.metrics.latency import record_benchmark
    from idrift.pipeline.fast import provenance

    need = NEEDS_S[arm] + (COMPILE_NEEDS_S if mode != speed.mode else 0)
    if speed.remaining() < need:
        pytest.skip(f"IDRIFT_SPEED_BUDGET_S: {speed.remaining():.0f} s left, {mode}/{arm} needs about {need} s")
    speed.enter(mode)
    torch = speed.torch
    pipe, ref = speed.pipeline, speed.reference
    spec = speed.spec_of(arm)
    images: dict = {}
    row_extra: dict = {}

    # fbc-<arm>: <arm> with First-Block-Cache on top of this mode (lossy, labelled so)
    fbc = arm.startswith("fbc-")
    inner = arm.removeprefix("fbc-")
    info = {"idrift_speed_mode": mode, "idrift_speed_arm": arm, "idrift_label": "lossy" if mode == "lossy" or fbc else mode}
    cache = None
    if fbc:
        from idrift.pipeline.step_cache import disable_step_cache, enable_step_cache

        cache = enable_step_cache(pipe, FBC_THRESHOLD)
    try:
        info["idrift_acceleration"] = provenance(pipe)
        if inner.startswith("batch"):
            specs = [spec.replace(seed=spec.seed + k) for k in range(batch_of(inner))]  # sample 0 is schnell-4's

            def generate(timer):
                pipe.clear_caches()
                speed.take_latents()
                return pipe.generate_batch(specs, ref, timer=timer)

            results = record_benchmark(benchmark, generate, rounds=3, warmup_rounds=1, device=speed.device,
                                       extra_info={**info, "batch": len(specs), "idrift_specs": [s.as_dict() for s in specs]})
            images = {"image": results[0].image, "latents": speed.take_latents()[0][:1]}
            median = statistics.median(benchmark.stats.stats.data) if getattr(benchmark, "stats", None) else None
            if median:
                row_extra = {"batch": len(specs), "per_image_s": median / len(specs), "images_per_s": len(specs) / median}
        elif inner in ("schnell-4", "dev-28", "noise-schnell-4", "noise-dev-28"):
            noise = inner.startswith("noise-")

            def generate(timer):
                pipe.clear_caches()
                speed.take_latents()
                if noise:  # same function, another attention kernel: the bf16 reassociation floor
                    from torch.nn.attention import SDPBackend, sdpa_kernel

                    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
                        return pipe(spec, ref, timer=timer)
                return pipe(spec, ref, timer=timer)

            rounds = 1 if noise else (5 if "schnell" in inner else 3)
            # enter() already warmed the accelerated dev-28 up; a step cache takes another code path: warm it
            warmup = 0 if noise or (mode != "reference" and "dev" in inner and not fbc) else 1
            result = record_benchmark(benchmark, generate, rounds=rounds, warmup_rounds=warmup, device=speed.device,
                                      extra_info={**info, "idrift_spec": spec.as_dict()})
            images = {"image": result.image, "latents": speed.take_latents()[0]}
        else:  # drift curve: DRIFT_STEPS budgets of dev
            trajectory = inner == "drift-trajectory"

            def generate(timer):
                pipe.clear_caches()  # once per curve: separate runs of the runner reuse encodings
                if trajectory:
                    return pipe(spec.replace(steps=DRIFT_STEPS[-1]), ref, trajectory_steps=DRIFT_STEPS)
                return [pipe(spec.replace(steps=k), ref) for k in DRIFT_STEPS]

            result = record_benchmark(benchmark, generate, rounds=1, warmup_rounds=0, device=speed.device,
                                      extra_info={**info, "drift_steps": list(DRIFT_STEPS)})
            speed.take_latents()
            if trajectory:
                images = {"trajectory": dict(result.trajectory)}
    finally:
        if cache is not None:
            stats = cache.stats()
            disable_step_cache(pipe)
    if cache is not None:
        row_extra.update({"step_cache": {k: stats[k] for k in ("threshold", "warmup_steps", "max_consecutive_skips")},
                          "skip_rate": stats["last_image"]["skip_rate"], "skipped_steps": stats["last_image"]["skipped"],
                          "steps": len(stats["last_image"]["decisions"])})

    seconds = list(benchmark.stats.stats.data) if getattr(benchmark, "stats", None) else []
    row = {"seconds": seconds, "median_s": float(statistics.median(seconds)) if seconds else None,
           "stages_s": benchmark.extra_info.get("stage_medians_s"),
           "gpu_peak_gb": (benchmark.extra_info.get("gpu_peak_bytes") or 0) / 1e9,
           "gpu_resident_gb": torch.cuda.memory_allocated() / 1e9 if speed.device != "cpu" else None}
    if mode == "reference" and base_arm(arm) == arm and images:
        speed.images[("reference", arm)] = images
    row.update(row_extra)
    row.update(_compare(speed, mode, arm, images))
    row.update(speed.identity.measure(mode, arm, images))
    speed.results[mode][arm] = row
    benchmark.extra_info.update({k: v for k, v in row.items() if k not in ("seconds", "stages_s")})
    speed.write()


def test_speed_summary(speed, capsys):
    summary = speed.write(floors=True)
    lines = [(f"{'mode':9} {'arm':20} {'median s':>9} {'speedup':>8} {'peak GB':>8} {'px max':>7} {'px mean':>8} "
              f"{'lat rel':>8}")]
    for r in summary["rows"]:
        lines.append(f"{r['mode']:9} {r['arm']:20} {r.get('median_s') or float('nan'):9.3f} "
                     f"{r.get('speedup', float('nan')):8.2f} {r['gpu_peak_gb']:8.1f} "
                     f"{r.get('pixel_max', r.get('trajectory_pixel_max', -1)):7d} "
                     f"{r.get('pixel_mean', r.get('trajectory_pixel_mean', float('nan'))):8.3f} "
                     f"{r.get('latent_rel_diff', float('nan')):8.4f}")
        if "images_per_s" in r:
            lines.append(f"{'':30} batch {r['batch']}: {r['images_per_s']:.3f} images/s, {r['per_image_s']:.3f} s per image")
        if "skip_rate" in r:
            lines.append(f"{'':30} First-Block-Cache (lossy) threshold {r['step_cache']['threshold']:g}: "
                         f"skipped {r['skipped_steps']} of {r['steps']} steps (rate {r['skip_rate']:.2f})")
        if "ratio_to_naive_reference" in r:
            lines.append(f"{'':30} trajectory / naive reference curve = {r['ratio_to_naive_reference']:.3f}")
        if r.get("id_sim_delta") is not None:
            lines.append(f"{'':30} identity: ID_sim {r['id_sim']:.4f} ({r['id_sim_delta']:+.4f} vs the reference path), "
                         f"faces {r['id_sim_between']:.4f} alike")
        elif "identity_reason" in r:
            lines.append(f"{'':30} identity: {r['identity_reason']}")
        elif r.get("id_sim") is not None:
            lines.append(f"{'':30} identity: ID_sim {r['id_sim']:.4f}")
    if not summary["identity"]["measured"]:
        lines.append(f"identity shift {summary['identity']['reason']}")
    for mode, total in summary["compile_s"].items():
        parts = summary["compile_parts_s"].get(mode) or {}
        cache = speed.compile[mode]["compile_cache"]
        lines.append(f"compile s, {mode} ({cache} cache; first calls minus steady state): "
                     + ("n/a" if total is None else f"{total:.1f} = " + " + ".join(f"{k} {v:.1f}" for k, v in parts.items())))
    rates = summary["floor"]["rates_flop_per_s"]
    lines.append("rates here (TFLOP/s): " + ", ".join(f"{k} {rates[k] / 1e12:.0f}" for k in ("bf16_matmul", "fp8_matmul", "attention")
                                                       if rates.get(k)))
    for key, f in summary["floor"]["arms"].items():
        lines.append(f"floor {key}: steps {f['steps_floor_s']:.3f} s at these rates vs {f['steps_s']:.3f} s measured "
                     f"({f['step_efficiency']:.0%}); whole image >= {f['floor_s']:.3f} s ({f['step_tflop']:.1f} TFLOP a step)")
    for name, v in summary["targets"].items():
        status = {True: "met", False: "MISSED", None: "not measured"}[v["met"]]
        value = "n/a" if v["value"] is None else f"{v['value']:.3f}"
        floor = f", floor here {v['floor_s']:.3f}" if "floor_s" in v else ""
        lines.append(f"target {name}: {value} (bound {v['bound']:.3f}{floor}) {status}")
    # The baseline's fast_paths entry: rewritten with --idrift-update-baselines, else the gate.
    failures = []
    session = speed.session
    if session.options.update_baselines:
        try:
            lines += update_speed_baseline(session.baseline.path, summary, summary["provenance"])
        except BaselineError as exc:  # e.g. --benchmark-disable: no timings to record
            failures.append(f"not recording the fast paths in {session.baseline.path}: {exc}")
    else:
        verdicts = gate_speed(session.baseline, summary, speed.provenance.get("gpu"))
        lines += [f"{v.status.upper():14} {v.metric}: {format_number(v.candidate)} vs baseline {format_number(v.baseline)}"
                  for v in verdicts]
        failures += [v.message() for v in verdicts if v.failed]
    with capsys.disabled():
        print("\n" + "\n".join(lines))

    # Lossless must stay within bf16 reassociation noise: a few times the attention-kernel swap's effect.
    rows = {(r["mode"], r["arm"]): r for r in summary["rows"]}
    for arm in ("schnell-4", "dev-28"):
        noise, fast = rows.get(("reference", f"noise-{arm}")), rows.get(("lossless", arm))
        if noise and fast and "latent_rel_diff" in fast:
            bound = max(3 * noise["latent_rel_diff"], 1e-3)
            if fast["latent_rel_diff"] > bound:
                failures.append(f"lossless {arm}: latent rel diff {fast['latent_rel_diff']:.4f} > {bound:.4f} "
                                f"(3x the noise floor {noise['latent_rel_diff']:.4f})")
    if os.environ.get("IDRIFT_SPEED_STRICT", "") not in ("", "0"):
        failures += [f"target {n} missed: {v['value']:.3f} vs {v['bound']:.3f}"
                     for n, v in summary["targets"].items() if v["met"] is False]
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)
