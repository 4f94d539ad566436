"""Figure 5 (right): FLUX.1-schnell's output does not depend on guidance_scale (no guidance embedding).

Claims: idrift.claims.
"""

from idrift.pytest_plugin import check_claim, run_sample

CLAIM_FAMILY = "guidance"


def test_sample(idrift_session, idrift_sample):
    run_sample(idrift_session, idrift_sample)


def test_claim(idrift_session, idrift_claim, request):
    check_claim(idrift_session, idrift_claim, request)
