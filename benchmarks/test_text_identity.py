"""Beyond the paper: CLIP-T rises while identity drifts, most in the tiers that drift most. Claims: idrift.claims."""

from idrift.pytest_plugin import check_claim, run_sample

CLAIM_FAMILY = "text_identity"


def test_sample(idrift_session, idrift_sample):
    run_sample(idrift_session, idrift_sample)


def test_claim(idrift_session, idrift_claim, request):
    check_claim(idrift_session, idrift_claim, request)
