"""The options of one benchmark session, checked when they are made: a bad value is one line naming the
option (as the pytest plugin or `idrift run` spells it) before anything loads."""

from __future__ import annotations

from dataclasses import dataclass, field

from idrift.accel.plan import AccelerationPlan
from idrift.config import ACCELERATE_MODES, EAGER, MEMORY_MODES, PROFILES, step_cache_threshold
from idrift.errors import IdriftError


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
    def plan(self) -> AccelerationPlan:
        """The idrift.accel.plan.AccelerationPlan these options name; its label is the RunSpec.acceleration of
        every arm that names no path of its own. From the options, so that collecting builds no pipeline."""
        path = {"eager": EAGER, "lossless": "lossless", "lossy": "fp8"}[self.accelerate]
        return AccelerationPlan(path, step_cache=self.step_cache, memory=self.memory)

    def flag(self, name: str, command: str | None = None) -> str:
        """The command-line option `name` ("accelerate") as `command` (default: this session's) spells it."""
        return f"--{name}" if (command or self.command) == "idrift run" else f"--idrift-{name}"

    def acceleration_args(self, command: str | None = None) -> list[str]:
        """The options that give this acceleration (for messages, a baseline's command)."""
        args = [] if self.accelerate == "eager" else [self.flag("accelerate", command), self.accelerate]
        args += [] if self.step_cache is None else [self.flag("step-cache", command), f"{self.step_cache:g}"]
        args += [] if self.memory == "off" else [self.flag("memory", command), self.memory]
        return args
