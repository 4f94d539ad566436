"""The runner's batches: samples whose runs differ only in the seed are generated together
(RunContext.batch_size), on the tiny profile with a real results store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idrift.claims import CLAIMS_BY_ID
from idrift.session import BenchmarkSession, SessionOptions


def session_with(tmp_path, name: str, batch_size: int) -> BenchmarkSession:
    return BenchmarkSession(SessionOptions(store=str(tmp_path / name), cache_dir=str(tmp_path / "cache"),
                                           batch_size=batch_size))


def seeds_of(session, mode: str = "budget"):
    claim = CLAIMS_BY_ID["figure5_drift" if mode == "trajectory" else "figure5_guidance"]
    [spec] = [s for s in session.specs(claim) if s.mode == mode][:1]
    return [spec.replace(seed=seed) for seed in (0, 1, 2)]


def image(session, spec) -> np.ndarray:
    return np.asarray(session.store.get(spec).load_image(), dtype=np.int16)


@pytest.mark.parametrize("mode", ["budget", "trajectory"])
def test_batched_samples_match_the_samples_generated_one_by_one(tmp_path, mode):
    batched, alone = session_with(tmp_path, "batched", 2), session_with(tmp_path, "alone", 1)
    specs = seeds_of(batched, mode)
    records = batched.runner.ensure(specs, ("pixels",), progress=False)
    alone.runner.ensure(specs, ("pixels",), progress=False)
    assert [r["status"] for r in records] == ["ok"] * 3
    for spec in specs:
        assert np.abs(image(batched, spec) - image(alone, spec)).max() <= 1
    # 3 samples in batches of at most 2: one batch of 2 and one of 1, recorded with each sample.
    batch_sizes = sorted(batched.store.get(s).provenance["batch"] for s in specs)
    assert batch_sizes == [1, 2, 2]


def test_a_bad_sample_fails_alone_and_its_batch_mates_are_kept(tmp_path):
    session = session_with(tmp_path, "store", 3)
    specs = seeds_of(session)
    bad = specs[1]
    pipe = session.pipeline
    bad_noise = pipe.initial_latents(bad)[0][0]

    def poison(module, args, kwargs, output):  # the step-1 row whose latents are the bad seed's noise
        for row, latents in enumerate(kwargs["hidden_states"]):
            if torch.equal(latents, bad_noise):
                output[0][row] = float("nan")
        return output

    handle = pipe.bundle.backbone(bad.backbone).register_forward_hook(poison, with_kwargs=True)
    try:
        records = session.runner.ensure(specs, ("pixels",), progress=False)
    finally:
        handle.remove()
    assert [r["status"] for r in records] == ["ok", "failed", "ok"]
    assert bad.key in records[1]["error"] and "NaN/inf" in records[1]["error"]
    assert session.store.get(specs[0]).provenance["batch"] == 1  # regenerated alone after the batch failed


def test_batch_size_must_be_positive(tmp_path):
    from idrift.errors import IdriftError

    with pytest.raises(IdriftError, match="--idrift-batch-size must be a whole number >= 1"):
        session_with(tmp_path, "store", 0)
    session = session_with(tmp_path, "store", 1)
    session.context.batch_size = 0  # a RunContext built by hand is checked by the runner too
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        session.runner.ensure(seeds_of(session), ("pixels",), progress=False)
