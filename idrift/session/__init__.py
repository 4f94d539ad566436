"""A benchmark session (idrift.session.benchmark.BenchmarkSession) and its options: what the pytest plugin
and `idrift run` drive, and what `compare` and `bless` rebuild from a finished run."""

from idrift.baselines.io import baselines_dir
from idrift.config import DEFAULT_BASELINE
from idrift.session.benchmark import BenchmarkSession
from idrift.session.options import SessionOptions

# The named baselines: the checkout's baselines/ or an installed wheel's copy (idrift.baselines.io.baselines_dir).
REPO_BASELINES = baselines_dir()

__all__ = ["BenchmarkSession", "DEFAULT_BASELINE", "REPO_BASELINES", "SessionOptions"]
