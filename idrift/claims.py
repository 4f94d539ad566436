"""The paper's claims, as data.

A `Claim` reads like the paper: which configurations ("arms") it compares, over which prompts,
identities and seeds, which figures it derives from the per-sample measurements, and what relation
those figures must satisfy. The engine (idrift.runner, idrift.evaluate) is generic: adding a claim is
adding an entry to `CLAIMS`, never a loop.

Each expectation says which profiles can judge it. Identity and LPIPS numbers of random weights mean
nothing, so those expectations run on `real` only and are skipped elsewhere with the reason. The
structural ones (schnell ignores guidance; a trajectory's last x0 equals the separate run) hold for
any weights and run everywhere, CI included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from idrift.config import BACKBONE_GUIDANCE, EAGER

DRIFT_STEPS = (1, 2, 4, 8, 12, 16, 20, 24, 28)
SCHNELL_STEPS = (1, 2, 4)
GUIDANCE_SCALES = (0.0, 0.5, 1.0, 2.0, 3.5)
ALPHAS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
# Four seeds per (identity, prompt) in the full tier of the paired claims: the gate then detects a
# 0.02 ID_sim drop with >= 90 % power at per-sample sd 0.08 (docs/development.md, "The gate's quality").
GATE_SEEDS = {"smoke": (0,), "full": (0, 1, 2, 3)}
VIRTUALLY_ALL = 0.9  # "virtually all identities": at least 90 % of them (the paper gives no number)

# The trajectory steps from the identity peak (about 4) to the end, for the text-identity claim.
TEXT_IDENTITY_STEPS = tuple(s for s in DRIFT_STEPS if s >= 4)

ANY_PROFILE = ("tiny", "synthetic", "real")
REAL_ONLY = ("real",)
GPU_PROFILES = ("synthetic", "real")  # real sizes on a GPU: tiny models' CPU timings say nothing of a GPU
# The fast_paths claim's numerical paths (idrift.accel.plan labels), in the order they run: each later one
# may reuse the bundle of the one before; fp8 replaces the weights, so it comes last.
FAST_PATHS = (EAGER, "stock-compile", "lossless", "lossy:fp8")
FBC_THRESHOLD = 0.12  # First-Block-Cache threshold of the step-cache arm (ParaAttention uses ~0.08-0.12 on FLUX)


@dataclass(frozen=True)
class Arm:
    """One configuration of the pipeline. Its name is the metric suffix: id_sim[dev-28]."""

    backbone: str
    steps: int
    alpha: float = 1.0
    guidance: float | None = None  # None: the backbone's own (dev 3.5, schnell 0)
    mode: str = "budget"  # "trajectory": x0 read off one DRIFT_STEPS[-1]-step run
    acceleration: str = EAGER  # the numerical path: an idrift.accel.plan.AccelerationPlan label

    def spec_fields(self) -> dict:
        """The RunSpec fields this arm sets (idrift.runner.specs_for passes them on as they are)."""
        return {"backbone": self.backbone, "steps": self.steps, "guidance": self.guidance_scale, "alpha": self.alpha,
                "mode": self.mode, "trajectory_of": DRIFT_STEPS[-1] if self.mode == "trajectory" else 0,
                "acceleration": self.acceleration}

    @property
    def guidance_scale(self) -> float:
        return BACKBONE_GUIDANCE[self.backbone] if self.guidance is None else self.guidance

    @property
    def name(self) -> str:
        name = f"{self.backbone}-{self.steps}"
        if self.guidance is not None:
            name += f"-g{self.guidance:g}"
        if self.alpha != 1.0:
            name += f"-a{self.alpha:g}"
        if self.mode == "trajectory":
            name += "-traj"
        if self.acceleration != EAGER:
            name += f"@{self.acceleration}"
        return name


@dataclass(frozen=True)
class Expect:
    """`metric op value` must hold, judged only on `profiles`."""

    metric: str
    op: str  # ">", ">=", "<", "<=", "=="
    value: float
    profiles: tuple[str, ...] = REAL_ONLY
    why: str = ""

    def holds(self, measured: float) -> bool:
        return {
            ">": measured > self.value, ">=": measured >= self.value, "<": measured < self.value,
            "<=": measured <= self.value, "==": measured == self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"

    @property
    def direction(self) -> str:
        """The metric's declared direction (idrift.verdicts.METRICS); a one-sided op must agree with it."""
        from idrift.verdicts import direction_of

        return direction_of(self.metric)


@dataclass(frozen=True)
class Samples:
    """Which identities, prompts and seeds a claim runs on, per tier."""

    prompt_set: str = "eval_v1"
    prompts: tuple[str, ...] | None = None  # None: every prompt of the set
    identities: dict[str, int] = field(default_factory=lambda: {"smoke": 2, "full": 28})
    seeds: dict[str, tuple[int, ...]] = field(default_factory=lambda: {"smoke": (0,), "full": (0,)})
    top_identities: bool = False  # "top-N identities by ID_sim" (figures 6-7)


@dataclass(frozen=True)
class Claim:
    id: str
    family: str  # the benchmarks/ file that runs it
    title: str
    paper: str  # where the paper states it
    protocol: str  # which subset/protocol the paper's numbers come from
    arms: tuple[Arm, ...]
    samples: Samples
    summary: str  # name of the summary function in idrift.evaluate.SUMMARIES
    expectations: tuple[Expect, ...]
    metrics: tuple[str, ...] = ("id_sim", "lpips")
    in_paper: bool = True  # False: idrift's own claim (no entry in baselines/paper.json)


def _drift_arms(backbone: str = "dev", steps=DRIFT_STEPS, **kw) -> tuple[Arm, ...]:
    return tuple(Arm(backbone, s, **kw) for s in steps)


DEV_28 = Arm("dev", 28)
SCHNELL_4 = Arm("schnell", 4)

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id="table1_backbone_swap", family="backbone_swap",
        title="FLUX.1-schnell 4 steps beats FLUX.1-dev 28 steps on ID_sim and LPIPS",
        paper="Table 1", protocol="28 FFHQ identities x 3 prompts (84 samples per method)",
        arms=(DEV_28, SCHNELL_4), samples=Samples(seeds=GATE_SEEDS), summary="backbone_swap",
        expectations=(
            Expect("id_sim_delta", ">", 0.0, why="schnell-4 more identity-faithful (paper +0.028)"),
            Expect("lpips_delta", "<", 0.0, why="schnell-4 closer to the reference (paper -0.016)"),
        ),
    ),
    Claim(
        id="table1_dev4_diagnostic", family="backbone_swap",
        title="FLUX.1-dev stopped at 4 steps already beats 28 steps (diagnostic)",
        paper="Table 1, dagger row", protocol="10-identity portrait subset",
        arms=(Arm("dev", 4), DEV_28),
        samples=Samples(prompts=("portrait",), identities={"smoke": 2, "full": 10}), summary="dev4_diagnostic",
        expectations=(Expect("id_sim_delta", ">", 0.0, why="early stopping helps identity (paper 0.6085 vs 0.5872)"),),
    ),
    Claim(
        id="table2_id_sim_by_prompt", family="backbone_swap",
        title="The ID_sim gain holds for every evaluation prompt",
        paper="Table 2", protocol="28 identities per prompt",
        arms=(DEV_28, SCHNELL_4), samples=Samples(seeds=GATE_SEEDS), summary="by_prompt",
        expectations=(Expect("min_prompt_delta", ">", 0.0, why="gain consistent across portrait, beach, suit"),),
    ),
    Claim(
        id="figure3_per_identity", family="backbone_swap",
        title="schnell-4 matches or exceeds dev-28 for virtually all identities",
        paper="Figure 3", protocol="per identity, mean over the 3 prompts",
        arms=(DEV_28, SCHNELL_4), samples=Samples(seeds=GATE_SEEDS), summary="per_identity",
        expectations=(Expect("fraction_schnell_ge_dev", ">=", VIRTUALLY_ALL,
                             why=f"'virtually all' read as at least {VIRTUALLY_ALL:.0%} of identities"),),
    ),
    Claim(
        id="figure5_drift", family="drift",
        title="FLUX.1-dev identity similarity peaks early and drifts down by 28 steps",
        paper="Figure 5 (left)", protocol="budgets 1..28, separate runs; a cheaper trajectory mode alongside",
        arms=_drift_arms() + _drift_arms(mode="trajectory"), samples=Samples(), summary="drift",
        expectations=(
            Expect("peak_step", "<=", 8, why="peak at about 4 steps"),
            Expect("drop", ">", 0.0, why="ID_sim falls from the peak to 28 steps (paper 0.066)"),
            Expect("trajectory_final_mismatches", "==", 0.0, ANY_PROFILE,
                   why="the trajectory's x0 after the last step is the 28-step image itself"),
        ),
        metrics=("id_sim", "pixels"),
    ),
    Claim(
        id="figure5_guidance", family="guidance",
        title="FLUX.1-schnell ignores guidance_scale",
        paper="Figure 5 (right)", protocol="schnell-4 at guidance 0, 0.5, 1, 2, 3.5",
        arms=tuple(Arm("schnell", 4, guidance=g) for g in GUIDANCE_SCALES), samples=Samples(), summary="guidance",
        expectations=(
            Expect("samples_varying_with_guidance", "==", 0.0, ANY_PROFILE,
                   why="schnell has no guidance embedding: images are bitwise identical"),
            Expect("id_sim_range", "==", 0.0, why="paper: variance 0 across guidance"),
        ),
        metrics=("id_sim", "pixels"),
    ),
    Claim(
        id="figure4_alpha", family="alpha",
        title="Identity drift persists for every conditioning scale alpha",
        paper="Figure 4", protocol="alpha in {0.25..1.5} x budgets 1..28 (trajectory mode)",
        arms=tuple(a for alpha in ALPHAS for a in _drift_arms(alpha=alpha, mode="trajectory")),
        samples=Samples(), summary="alpha",
        expectations=(Expect("min_drift", ">", 0.0, why="paper: drift 0.021-0.118 for every alpha"),),
        metrics=("id_sim",),
    ),
    Claim(
        id="figures6_7_prompt_complexity", family="prompt_complexity",
        title="Drift grows with prompt complexity; schnell stays flat",
        paper="Figures 6-7", protocol="6 prompt tiers x budgets, top-10 identities by ID_sim",
        arms=_drift_arms(mode="trajectory") + _drift_arms("schnell", SCHNELL_STEPS),
        samples=Samples(prompt_set="complexity_v1", identities={"smoke": 1, "full": 10}, top_identities=True),
        summary="prompt_complexity",
        expectations=(
            Expect("tier_drift_spearman", ">", 0.0, why="drift increases from minimal to style prompts"),
            Expect("schnell_drift_max", "<=", 0.005, why="paper: schnell drift <= 0.005 for every tier"),
        ),
        metrics=("id_sim",),
    ),
    Claim(
        # Beyond the paper: the paper measures identity only. This is idrift's hypothesis for why drift
        # happens (the later steps trade the face for the prompt), tested on the figures 6-7 samples.
        id="text_identity_competition", family="text_identity",
        title="Beyond the paper: text alignment (CLIP-T) rises while identity drifts, most where drift is largest",
        paper="beyond the paper (idrift's hypothesis; the paper reports no text alignment)",
        protocol="6 prompt tiers x FLUX.1-dev trajectory steps 4..28, top-10 identities (the figures 6-7 samples)",
        arms=_drift_arms(steps=TEXT_IDENTITY_STEPS, mode="trajectory"),
        samples=Samples(prompt_set="complexity_v1", identities={"smoke": 1, "full": 10}, top_identities=True),
        summary="text_identity",
        expectations=(
            Expect("clip_t_step_spearman", ">", 0.0, why="CLIP-T rises over steps 4..28 as ID_sim falls"),
            Expect("drift_gain_pearson", ">", 0.0, why="tiers with more ID_sim drift gain more CLIP-T"),
        ),
        metrics=("id_sim", "clip_t"), in_paper=False,
    ),
    Claim(
        id="latency", family="latency",
        title="FLUX.1-schnell 4 steps is about 5.9x faster than FLUX.1-dev 28 steps",
        paper="Table 1 (latency, speed-up)", protocol="wall clock per image, warm-up excluded, CUDA synchronised",
        arms=(DEV_28, SCHNELL_4, Arm("dev", 4)),
        samples=Samples(prompts=("portrait",), identities={"smoke": 1, "full": 1}),
        summary="latency",
        expectations=(Expect("speedup", ">=", 4.0, ("synthetic", "real"),
                             why=("28 vs 4 steps of the same transformer (paper 5.9x); "
                                  "tiny models' CPU timings say nothing of a GPU")),),
        metrics=("latency",),
    ),
)

CLAIMS += (
    Claim(
        id="fast_paths", family="fast_paths",
        title="The training-free fast paths cut seconds per image against eager and against stock compile",
        paper="not in the paper: idrift's acceleration targets (issue #18)",
        protocol=("wall clock per image, warm-up excluded, CUDA synchronised; every path measured in the same run, "
                  "speed-ups over the eager path and over diffusers' compile_repeated_blocks (the peer)"),
        arms=tuple(Arm(backbone, steps, acceleration=path) for path in FAST_PATHS for backbone, steps in
                   (("schnell", 4), ("dev", 28)))
        + (Arm("schnell", 4, acceleration=f"lossy:fp8+fbc{FBC_THRESHOLD:g}"),),
        samples=Samples(prompts=("portrait",), identities={"smoke": 1, "full": 1}),
        summary="fast_paths",
        expectations=(
            Expect("latency_s[schnell-4@lossless]", "<=", 0.65, GPU_PROFILES, why="lossless schnell-4 target"),
            Expect("speedup_vs_eager[schnell-4@lossless]", ">=", 1.5, GPU_PROFILES, why="lossless schnell-4 target"),
            Expect("speedup_vs_stock[schnell-4@lossless]", ">", 1.0, GPU_PROFILES,
                   why="the fast path must beat what diffusers' regional compilation gives"),
            Expect("latency_s[dev-28@lossless]", "<=", 4.5, GPU_PROFILES, why="lossless dev-28 target"),
            Expect("latency_s[schnell-4@lossy:fp8]", "<=", 0.40, GPU_PROFILES, why="fp8 schnell-4 target"),
            Expect(f"latency_s[schnell-4@lossy:fp8+fbc{FBC_THRESHOLD:g}]", "<=", 0.40, GPU_PROFILES,
                   why="fp8 with First-Block-Cache schnell-4 target"),
            Expect("compile_s[schnell-4@lossless]", "<=", 60.0, GPU_PROFILES,
                   why="regional compilation of the blocks stays about a minute (first call minus steady state)"),
        ),
        metrics=("latency",), in_paper=False,
    ),
)

CLAIMS_BY_ID = {claim.id: claim for claim in CLAIMS}
FAMILIES = tuple(dict.fromkeys(claim.family for claim in CLAIMS))


def claims_in_family(family: str) -> list[Claim]:
    return [claim for claim in CLAIMS if claim.family == family]


def get_claims(names: str | list[str]) -> list[Claim]:
    """'all', a family name, or claim ids; unknown names get an error listing the known ones."""
    from idrift.errors import IdriftError

    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if names == ["all"]:
        return list(CLAIMS)
    out: list[Claim] = []
    for name in names:
        if name in CLAIMS_BY_ID:
            out.append(CLAIMS_BY_ID[name])
        elif name in FAMILIES:
            out.extend(claims_in_family(name))
        else:
            raise IdriftError(f"unknown claim {name!r}; known claims: {', '.join(CLAIMS_BY_ID)}; "
                              f"families: {', '.join(FAMILIES)}")
    return list({claim.id: claim for claim in out}.values())  # de-duplicated by id: a Claim is not hashable
