"""Every input that can be checked, checked before the first sample is generated.

`check_inputs(session)` runs the checks that need no model: the baseline (found, valid JSON, schema,
finite non-negative tolerances), the identity manifest (schema, images and
their hashes), the store location (a folder that can be written), the profile's device (a GPU for
`synthetic`) and, on `real`, every weight file (`weights check`'s verification). Each problem is an
IdriftError whose message names the input and what to do; the pytest plugin turns it into one
`pytest.UsageError` line, `idrift run` into one `error:` line. Without these a bad baseline was noticed
only after every sample had been generated (on `real`: after the whole GPU sweep).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from idrift.errors import BaselineError, IdriftError


def check_store_location(path: str | os.PathLike, flag: str = "--idrift-store") -> None:
    """The store folder exists or can be made, and a file can be written in it. Makes no database."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise IdriftError(f"{flag} {path} exists and is not a folder; pass a folder path")
    probe_dir = path
    while not probe_dir.exists():  # the nearest existing parent must be writable to create the store
        probe_dir = probe_dir.parent
    try:
        fd, probe = tempfile.mkstemp(dir=probe_dir, prefix=".idrift-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise IdriftError(f"{flag} {path}: {probe_dir} is not writable ({exc.strerror or exc}); choose a folder "
                          f"you can write to with {flag} DIR") from None


def check_baseline(session) -> None:
    """Load the session's baseline (name or path, schema, NaN, negative tolerances: idrift.baselines.io).
    With --idrift-update-baselines a baseline file that does not exist yet is fine (the run writes it)."""
    try:
        session.baseline
    except BaselineError:
        if session.options.update_baselines and _baseline_missing(session):
            return
        raise


def _baseline_missing(session) -> bool:
    from idrift.baselines.io import baselines_dir
    from idrift.config import DEFAULT_BASELINE

    name = session.options.baseline or DEFAULT_BASELINE[session.profile]
    text = os.fspath(name)
    path = Path(text) if (text.endswith(".json") or os.sep in text) else baselines_dir() / f"{text}.json"
    return not path.exists()


def check_identities(manifest: str | None, flag: str = "--idrift-identities") -> None:
    """A manifest given on the command line: readable, of this schema, its images present and intact."""
    if manifest is None:
        return
    from idrift.data.identities import load_manifest

    if Path(manifest).is_dir():
        raise IdriftError(f"{flag} {manifest} is a folder; give its manifest.json "
                          "(build one with `idrift data build-identities`)")
    try:
        load_manifest(manifest)
    except IdriftError as exc:
        raise IdriftError(f"{flag}: {exc}") from None


def check_device(session) -> None:
    """`synthetic` makes real-size images on a GPU: refuse it, in one line, where torch sees none."""
    if session.profile != "synthetic" or (session.options.device or "cuda") != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        flag = session.options.flag("profile")
        raise IdriftError(f"{flag} synthetic needs a CUDA GPU (real-size images in bf16) and torch sees none "
                          f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use {flag} "
                          "tiny on a CPU, or run on a GPU machine")


def check_inputs(session, *, baseline: bool = True, weights: bool = True) -> None:
    """Everything above for one session, cheapest first; the first problem raises."""
    options = session.options
    check_identities(options.identities, options.flag("identities"))
    if baseline:
        check_baseline(session)
    check_store_location(session.store_path, options.flag("store") if options.command == "pytest" else "--out")
    check_device(session)
    if weights and session.profile == "real":
        session.check_real_weights()
