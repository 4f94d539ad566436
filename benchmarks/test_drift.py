"""Figure 5 (left): identity drift of FLUX.1-dev over step budgets 1..28, as separate runs (the paper's
meaning) and as one trajectory's x0 predictions (cheap); their agreement is reported. Claims: idrift.claims."""

from idrift.pytest_plugin import check_claim, run_sample

CLAIM_FAMILY = "drift"


def test_sample(idrift_session, idrift_sample):
    run_sample(idrift_session, idrift_sample)


def test_claim(idrift_session, idrift_claim, request):
    check_claim(idrift_session, idrift_claim, request)
