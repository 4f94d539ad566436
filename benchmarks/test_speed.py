"""The fast paths (idrift.accel) against the eager path and against stock compile, measured in one run:
seconds per image end to end, warm-up (compile, CUDA graph capture) apart, CUDA synchronised, peak GPU
memory, and each path's image against the eager image of the same spec. Claim: idrift.claims, fast_paths.
On a CPU the paths that need CUDA (stock compile, fp8) are skipped with the reason; their expectations
are judged on the synthetic and real profiles only."""

import pytest

from idrift.claims import CLAIMS_BY_ID
from idrift.pytest_plugin import benchmark_arm, check_claim

CLAIM_FAMILY = "fast_paths"


@pytest.mark.parametrize("arm", CLAIMS_BY_ID["fast_paths"].arms, ids=lambda arm: arm.name)
def test_fast_path(benchmark, idrift_session, arm):
    benchmark_arm(idrift_session, benchmark, arm)


def test_claim(idrift_session, idrift_claim, request):
    check_claim(idrift_session, idrift_claim, request)
