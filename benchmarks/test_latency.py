"""Table 1 latency: seconds per image for FLUX.1-dev 28 steps and FLUX.1-schnell 4 steps, end to end,
warm-up excluded, CUDA synchronised, with a per-stage breakdown (pytest-benchmark; see
`--benchmark-json`), and the speed-up measured in the same run. Claims: idrift.claims."""

import pytest

from idrift.claims import CLAIMS_BY_ID
from idrift.pytest_plugin import benchmark_arm, check_claim

CLAIM_FAMILY = "latency"


@pytest.mark.parametrize("arm", CLAIMS_BY_ID["latency"].arms, ids=lambda arm: arm.name)
def test_latency(benchmark, idrift_session, arm):
    benchmark_arm(idrift_session, benchmark, arm)


def test_claim(idrift_session, idrift_claim, request):
    check_claim(idrift_session, idrift_claim, request)
