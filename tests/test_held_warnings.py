"""No warning is printed through a progress bar (issue 22, item 3): held while the bars run, written to the
run folder's log, printed once (de-duplicated) after them. Real tqdm, warnings and logging."""

from __future__ import annotations

import logging
import sys
import warnings

import pytest
from tqdm import tqdm

from idrift.held_warnings import held_warnings


def noisy_bars(n: int = 3) -> None:
    library = logging.getLogger("fake_library")  # a library with its own terminal handler, as diffusers has
    handler = logging.StreamHandler(sys.stderr)
    library.addHandler(handler)
    library.propagate = False
    library.setLevel(logging.INFO)
    try:
        for _ in tqdm(range(n), desc="samples", file=sys.stderr):
            warnings.warn("`estimate` is deprecated", FutureWarning, stacklevel=1)
            library.warning("Keyword arguments {'x': 1} are not expected and will be ignored.")
            library.info("below WARNING: not a warning, not held")
    finally:
        library.removeHandler(handler)


def test_warnings_wait_until_the_bars_are_done(tmp_path, capsys):
    log = tmp_path / "run" / "warnings.log"
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # every call warns, as a warning from a new location would
        with held_warnings(log):
            noisy_bars()
    err = capsys.readouterr().err
    bars, _, after = err.partition("warnings while the bars ran")
    assert "samples" in bars and "100%" in bars
    for text in ("deprecated", "not expected"):
        assert text not in bars, bars
    assert "below WARNING" in bars  # info is not a warning: it is not held
    assert after.startswith(f" (6, 2 distinct, all in {log}):")
    lines = after.splitlines()[1:]
    assert lines[0] == "  warning [fake_library]: Keyword arguments {'x': 1} are not expected and will be ignored. (x3)"
    assert lines[1].startswith("  FutureWarning (test_held_warnings.py:") and lines[1].endswith(
        "): `estimate` is deprecated (x3)")
    assert len(lines) == 2
    logged = log.read_text().splitlines()
    assert len(logged) == 6
    assert sum("estimate" in line for line in logged) == 3


def test_logging_and_warnings_are_restored_and_an_interrupt_still_reports(tmp_path, capsys):
    emit, last_resort = logging.StreamHandler.emit, logging.lastResort
    with pytest.raises(KeyboardInterrupt):
        with held_warnings(tmp_path / "warnings.log"):
            warnings.warn("held before Ctrl-C", UserWarning, stacklevel=1)
            raise KeyboardInterrupt
    assert logging.StreamHandler.emit is emit and logging.lastResort is last_resort
    assert "UserWarning" in capsys.readouterr().err and "held before Ctrl-C" in (tmp_path / "warnings.log").read_text()
    with held_warnings(tmp_path / "quiet.log"):
        pass
    assert capsys.readouterr().err == "" and not (tmp_path / "quiet.log").exists()
