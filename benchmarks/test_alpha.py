"""Figure 4: the drift persists for every InfuseNet conditioning scale alpha in 0.25..1.5. Claims: idrift.claims."""

from idrift.pytest_plugin import check_claim, run_sample

CLAIM_FAMILY = "alpha"


def test_sample(idrift_session, idrift_sample):
    run_sample(idrift_session, idrift_sample)


def test_claim(idrift_session, idrift_claim, request):
    check_claim(idrift_session, idrift_claim, request)
