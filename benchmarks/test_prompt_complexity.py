"""Figures 6-7: drift grows with prompt complexity (six tiers, minimal to style); schnell stays flat.

Claims: idrift.claims.
"""

from idrift.pytest_plugin import check_claim, run_sample

CLAIM_FAMILY = "prompt_complexity"


def test_sample(idrift_session, idrift_sample):
    run_sample(idrift_session, idrift_sample)


def test_claim(idrift_session, idrift_claim, request):
    check_claim(idrift_session, idrift_claim, request)
