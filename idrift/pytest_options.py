"""The pytest plugin's options: `--idrift-*` with their IDRIFT_* environment defaults, and the
SessionOptions they make. A bad environment value is kept in ENV_ERRORS (an error raised while options
are added prints a traceback) and idrift.pytest_plugin stops the session with it in one line."""

from __future__ import annotations

import os
import shlex

from idrift.config import PROFILES
from idrift.env import EnvError, env_choice, env_flag, env_int

ENV_ERRORS: list[str] = []  # bad IDRIFT_* values met while the options were added: one UsageError later


def _env(read, *args):
    """An option's default from the environment (idrift.env); a bad value is kept for pytest_cmdline_main,
    which stops the session with one line (an error raised while options are added prints a traceback)."""
    try:
        return read(*args)
    except EnvError as exc:
        ENV_ERRORS.append(str(exc))
        return args[-1]  # every reader's last argument is its default


def add_options(parser) -> None:
    """The idrift options of `pytest`, each with its IDRIFT_* environment default."""
    ENV_ERRORS.clear()  # in-process pytest runs (pytester) add the options again
    group = parser.getgroup("idrift", "idrift benchmarks")
    group.addoption("--idrift-profile", default=_env(env_choice, "IDRIFT_PROFILE", PROFILES, "tiny"),
                    choices=PROFILES, help="tiny (random, CPU), synthetic (random, real size, GPU) or real (weights) "
                                           "[env IDRIFT_PROFILE]")
    group.addoption("--idrift-baseline", default=os.environ.get("IDRIFT_BASELINE"),
                    help="baseline name in baselines/ or a path (default: tiny-cpu / h200-synthetic / paper)")
    group.addoption("--idrift-tier", default=_env(env_choice, "IDRIFT_TIER", ("smoke", "full"), "smoke"),
                    choices=("smoke", "full"), help="smoke: a few identities x prompts; full: the paper's grids")
    group.addoption("--idrift-update-baselines", action="store_true",
                    help="rewrite the selected baseline from this run and print what changed")
    group.addoption("--idrift-require-real", action="store_true", default=_env(env_flag, "IDRIFT_REQUIRE_REAL", False),
                    help="fail, instead of skip, claims this profile cannot judge [env IDRIFT_REQUIRE_REAL=1]")
    group.addoption("--idrift-strict", action="store_true",
                    default=_env(env_flag, "IDRIFT_STRICT", False),
                    help="fail claims whose verdict is INCONCLUSIVE (interval straddles the bound) "
                         "[env IDRIFT_STRICT=1]")
    group.addoption("--idrift-store", default=os.environ.get("IDRIFT_STORE"),
                    help="results store folder (default .idrift/store-<profile>)")
    group.addoption("--idrift-fresh", action="store_true", help="start from an empty results store")
    group.addoption("--idrift-identities", default=os.environ.get("IDRIFT_IDENTITIES"),
                    help="identity-set manifest (default: the built-in offline set)")
    group.addoption("--idrift-aggregation", default="zero", choices=("zero", "detected"),
                    help="ID_sim of a generated image with no face: counts as 0 (zero) or is left out (detected)")
    group.addoption("--idrift-shard", default=os.environ.get("IDRIFT_SHARD"),
                    help="i/n: run only shard i of n of every grid (CI matrix jobs); merge stores with `idrift merge`")
    group.addoption("--idrift-batch-size", default=_env(env_int, "IDRIFT_BATCH_SIZE", 1), type=int,
                    help="generate up to this many samples that differ only in the seed as one batch (default 1; "
                         "images match those made alone up to float reassociation) [env IDRIFT_BATCH_SIZE]")
    from idrift.config import ACCELERATE_MODES, MEMORY_MODES, step_cache_threshold

    group.addoption("--idrift-accelerate", default=_env(env_choice, "IDRIFT_ACCELERATE", ACCELERATE_MODES, "eager"),
                    choices=ACCELERATE_MODES,
                    help="eager (reference path, default); lossless: compiled blocks, cuDNN attention, VAE "
                         "channels_last (not compiled on a CPU); lossy: lossless plus fp8 matmuls (CUDA sm_89+) "
                         "[env IDRIFT_ACCELERATE]")
    group.addoption("--idrift-step-cache", default=os.environ.get("IDRIFT_STEP_CACHE"), type=step_cache_threshold,
                    metavar="THRESHOLD",
                    help="First-Block-Cache with this threshold, e.g. 0.12: skips backbone work on similar steps. "
                         "LOSSY. Default off [env IDRIFT_STEP_CACHE]")
    group.addoption("--idrift-memory", default=_env(env_choice, "IDRIFT_MEMORY", MEMORY_MODES, "off"),
                    choices=MEMORY_MODES,
                    help="off (default); offload: one resident backbone, text encoders offloaded (lossless); "
                         "offload-8bit: also 8-bit block weights (LOSSY) [env IDRIFT_MEMORY]")
    group.addoption("--idrift-allow-lossy-baselines", action="store_true",
                    default=_env(env_flag, "IDRIFT_ALLOW_LOSSY_BASELINES", False),
                    help="let --idrift-update-baselines write a baseline from a lossy pipeline (its provenance says "
                         "lossy) [env IDRIFT_ALLOW_LOSSY_BASELINES=1]")
    group.addoption("--idrift-lora", action="append", default=[], metavar="PATH[:SCALE]",
                    help="load this FLUX LoRA on the backbones (repeatable; SCALE default 1), as InfiniteYou's "
                         "load_loras does; part of every sample's key")
    group.addoption("--idrift-rounds", type=int, metavar="N",
                    default=_env(lambda name, default: env_int(name, default, minimum=1), "IDRIFT_ROUNDS", None),
                    help="timed rounds per latency arm after warm-up (default: 10 on CUDA, 2 on the CPU; "
                         "idrift.metrics.latency.DEFAULT_ROUNDS) [env IDRIFT_ROUNDS]")
    group.addoption("--idrift-warmup-rounds", type=int, metavar="N",
                    default=_env(lambda name, default: env_int(name, default, minimum=0), "IDRIFT_WARMUP_ROUNDS", None),
                    help="untimed warm-up rounds per latency arm (default: 2 on CUDA, 1 on the CPU) "
                         "[env IDRIFT_WARMUP_ROUNDS]")
    from idrift.models.paths import add_pytest_options

    add_pytest_options(group)


def parse_shard_option(text: str | None):
    """--idrift-shard i/n (idrift.sharding.parse_shard); None when not given."""
    if not text:
        return None
    from idrift.sharding import parse_shard

    return parse_shard(text)


def session_options(config):
    """The SessionOptions of this pytest invocation (idrift.session.options)."""
    from idrift.models.paths import options_from_pytest
    from idrift.session import SessionOptions

    return SessionOptions(
        profile=config.getoption("--idrift-profile"), tier=config.getoption("--idrift-tier"),
        baseline=config.getoption("--idrift-baseline"), store=config.getoption("--idrift-store"),
        fresh=config.getoption("--idrift-fresh"), require_real=config.getoption("--idrift-require-real"),
        strict=config.getoption("--idrift-strict"),
        update_baselines=config.getoption("--idrift-update-baselines"),
        identities=config.getoption("--idrift-identities"), aggregation=config.getoption("--idrift-aggregation"),
        shard=parse_shard_option(config.getoption("--idrift-shard")), weights=options_from_pytest(config),
        accelerate=config.getoption("--idrift-accelerate"), step_cache=config.getoption("--idrift-step-cache"),
        memory=config.getoption("--idrift-memory"),
        allow_lossy_baselines=config.getoption("--idrift-allow-lossy-baselines"),
        batch_size=config.getoption("--idrift-batch-size"), loras=tuple(config.getoption("--idrift-lora") or ()),
        rounds=config.getoption("--idrift-rounds"), warmup_rounds=config.getoption("--idrift-warmup-rounds"),
        invocation=shlex.join(["pytest", *config.invocation_params.args]),
    )
