"""Every skip says why in pytest's default output, one line per reason with a count (issue 22, item 4)."""

from __future__ import annotations

SKIPPING = '''
import pytest

@pytest.mark.parametrize("i", range(22))
def test_speed(i):
    pytest.skip("latency and speed-ups need a CUDA GPU")

@pytest.mark.skip(reason="table1_backbone_swap: tiny random models make no faces: use real weights")
def test_identity():
    pass

@pytest.mark.skip(reason="figure3_per_identity: tiny random models make no faces: use real weights")
def test_figure3():
    pass

def test_runs():
    pass
'''


def test_default_output_gives_each_skip_reason_once_with_its_count(pytester):
    pytester.makepyfile(test_skips=SKIPPING)
    result = pytester.runpytest("-p", "idrift.pytest_plugin", "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=24)
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "idrift skips" in line)
    assert lines[start + 1:start + 3] == [
        "22 skipped: latency and speed-ups need a CUDA GPU",
        "2 skipped (table1_backbone_swap, figure3_per_identity): tiny random models make no faces: use real weights"]
    assert sum("latency and speed-ups" in line for line in lines) == 1


def test_with_rs_pytest_lists_them_and_the_section_is_left_out(pytester):
    pytester.makepyfile(test_skips=SKIPPING)
    result = pytester.runpytest("-p", "idrift.pytest_plugin", "-q", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=24)
    assert not any("idrift skips" in line for line in result.stdout.lines)
    result.stdout.fnmatch_lines(["SKIPPED [[]22[]] *latency and speed-ups need a CUDA GPU"])


def test_no_skips_no_section(pytester):
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest("-p", "idrift.pytest_plugin", "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not any("idrift skips" in line for line in result.stdout.lines)
