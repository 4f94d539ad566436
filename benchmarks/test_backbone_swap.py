"""Table 1, Table 2 and Figure 3: InfiniteYou with FLUX.1-schnell at 4 steps (guidance 0) against
FLUX.1-dev at 28 steps, InfuseNet frozen; and the dev-4 diagnostic. Claims: idrift.claims."""

from idrift.pytest_plugin import check_claim, run_sample

CLAIM_FAMILY = "backbone_swap"


def test_sample(idrift_session, idrift_sample):
    run_sample(idrift_session, idrift_sample)


def test_claim(idrift_session, idrift_claim, request):
    check_claim(idrift_session, idrift_claim, request)
