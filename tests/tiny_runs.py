"""What the pipeline tests share: the tiny profile's reference face and a RunSpec builder (64x64, CPU).

Imported by the test modules (pytest puts tests/ on sys.path); fixtures stay in each module, since their
scopes differ (a module that mutates its pipeline builds a fresh one per test)."""

from __future__ import annotations

import numpy as np

from idrift.config import RunSpec
from idrift.pipeline.infinite_you import IdentityReference, InfiniteYouPipeline

# Five insightface-order keypoints of a face in a 128x128 reference image.
KPS = np.array([[40, 50], [88, 50], [64, 70], [45, 95], [83, 95]], np.float32)


def tiny_reference() -> IdentityReference:
    """A random 128x128 'photo' with the keypoints above: the pipeline needs no real face."""
    image = (np.random.default_rng(0).random((128, 128, 3)) * 255).astype(np.uint8)
    return IdentityReference("ref", image, KPS)


def tiny_spec(**changes) -> RunSpec:
    """dev, 4 steps, guidance 3.5, alpha 1, seed 0 at 64x64 on the tiny profile, with `changes` applied."""
    fields = dict(backbone="dev", steps=4, guidance=3.5, alpha=1.0, prompt_id="portrait",
                  prompt="a portrait photo of a person", identity="ref", seed=0, width=64, height=64,
                  dtype="float32", profile="tiny")
    fields.update(changes)
    return RunSpec(**fields)


def pixels(result) -> np.ndarray:
    """A GenerationResult's image as int16 pixels (differences do not wrap around)."""
    return np.asarray(result.image, dtype=np.int16)


def compiled_graph_count(reference, **accelerate_options) -> int:
    """Graphs dynamo captures for one tiny schnell image on a fresh pipeline after ``accelerate(pipe,
    "lossless", compile=True, backend="aot_eager", **accelerate_options)``: with FLUX's blocks compiled in
    place, one per block class and input shape unless something specialises every block."""
    import torch._dynamo

    from idrift.accel.fast import accelerate
    from idrift.models.tiny import build_tiny_bundle

    pipe = InfiniteYouPipeline(build_tiny_bundle())
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    try:
        accelerate(pipe, "lossless", compile=True, backend="aot_eager", **accelerate_options)
        pipe(tiny_spec(backbone="schnell", guidance=0.0, steps=2), reference)
        return torch._dynamo.utils.counters["stats"]["unique_graphs"]
    finally:
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
