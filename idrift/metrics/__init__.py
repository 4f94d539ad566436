"""The per-sample metrics the runner measures by name: one registry line each.

A registered metric is a module `idrift/metrics/<name>.py` with a class that has

    name          the store's metric name, the name a claim lists in `metrics`, and the key of its value
                  in the stored values ({"<name>": value}); evaluate reads figures "<name>[<arm>]" from it
    version       stored values of another version are measured again (the store keeps one per metric)
    build(setup)  classmethod: the instance for a session (MetricSetup), or None when the profile cannot
                  measure it (the claims that list it then have no such figures)
    measure(sample) -> dict   the values of one generated image (MeasuredSample: image, reference, prompt)
    provenance()  a dict for the session's provenance (under "metrics" -> name)

and one line in REGISTRY below. The runner measures every registered metric a claim lists, the session
builds them on first use, `idrift.evaluate.metric_of` reads them generically. ID_sim (idrift.metrics.identity)
and LPIPS (idrift.metrics.lpips) predate the registry and are measured by the runner directly.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# name -> "module:Class". Strings, so that planning a run imports no metric (nor torch).
REGISTRY: dict[str, str] = {
    "clip_t": "idrift.metrics.clip_t:ClipT",
}


@dataclass(frozen=True)
class MetricSetup:
    """What a metric may be built from: the session's profile, device, caches and weights."""

    profile: str  # tiny, synthetic or real
    device: str
    cache_dir: Path  # a writable folder for what a metric builds once (idrift.data.identities.user_cache_dir)
    weights: Any  # idrift.models.paths.WeightPaths: `weights.location("clip")` on `real`


@dataclass(frozen=True)
class MeasuredSample:
    """One generated image and what it is measured against."""

    image: Any  # PIL.Image.Image, RGB
    reference: Any  # numpy uint8 HxWx3: the identity's reference photo
    prompt: str  # the prompt text the image was generated from
    identity: str
    key: str  # the sample's RunSpec key


def metric_class(name: str) -> type:
    """The class registered as `name`; a KeyError naming the registered ones otherwise."""
    if name not in REGISTRY:
        raise KeyError(f"no registered metric {name!r}; registered: {', '.join(REGISTRY)} (idrift/metrics/__init__.py)")
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def build_metric(name: str, setup: MetricSetup) -> Any | None:
    """The metric `name` for this setup, or None where the profile cannot measure it."""
    return metric_class(name).build(setup)
