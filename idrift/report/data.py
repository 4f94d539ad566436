"""What the report reads from a run: re-evaluated claim results, store records, the paper's numbers.

Every figure and table reads per-sample values through `RunData.samples` (which goes through
idrift.evaluate's record accessors, so the aggregation rule for faceless images is the run's) and
quotes a mean with `identity_figure`: the seeds and prompts of one identity are averaged first and the
interval is idrift.stats' clustered bootstrap over identities (one CONFIDENCE). Figures that are not
means (a drift, a peak step) keep the interval idrift.evaluate gave them (`RunData.interval`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping

import numpy as np

from idrift.baselines.io import baselines_dir
from idrift.claims import CLAIMS_BY_ID
from idrift.stats import Figure, clustered_interval, mean_figure

# In the checkout's baselines/ or an installed wheel's copy; not from idrift.session, which pulls in torch.
PAPER_BASELINE = baselines_dir() / "paper.json"

# Claims whose samples include the dev-28 and schnell-4 arms on the eval prompts (Table 1 samples).
SWAP_CLAIMS = ("table1_backbone_swap", "figure3_per_identity", "table2_id_sim_by_prompt")
EVAL_PROMPTS = ("portrait", "beach", "suit")
COMPLEXITY = "figures6_7_prompt_complexity"
TEXT_IDENTITY = "text_identity_competition"  # beyond the paper (issue #21)


class MissingData(Exception):
    """A figure cannot be drawn from this run; the message says why and how to get the data."""


def hint(run, claim_id: str) -> str:
    """What to run to get the claim a figure or table needs. A scored folder (`idrift score`) holds
    another method's images: the paper's claims come from a run of InfiniteYou in a run directory of its own."""
    if "scored" in run.doc:
        return (f"{run.path} is a scored folder (`idrift score`), which holds no {claim_id} claim: that needs "
                f"InfiniteYou's own images, `idrift run --profile {run.profile} --claims {claim_id} --out RUN_DIR`")
    return (f"the run has no {claim_id} claim: `idrift run --profile {run.profile} --tier {run.tier} "
            f"--claims {claim_id} --out {run.path}` adds it")


def value_of(record: dict, metric: str, aggregation: str) -> float | None:
    """One record's value of `metric` by idrift.evaluate.metric_of; a metric it does not name (a newer
    one, CLIP-T say) is read where every metric group writes its value: metrics[metric][metric]."""
    from idrift.evaluate import metric_of

    try:
        return metric_of(record, metric, aggregation)
    except KeyError:
        values = record.get("metrics", {}).get(metric) or {}
        return None if values.get(metric) is None else float(values[metric])


def sample_key(spec: Mapping) -> str:
    return f"{spec['identity']}|{spec['prompt_id']}|{spec['seed']}"


def identity_figure(samples: Mapping[str, float]) -> Figure | None:
    """The mean of 'identity|prompt|seed' samples with idrift.stats' clustered interval over identities
    (prompts and seeds of one identity averaged first). One identity: the interval over its (identity,
    prompt) clusters (idrift.stats.mean_figure). None without samples."""
    if not samples:
        return None
    groups: dict[str, list[float]] = defaultdict(list)
    for key, value in samples.items():
        groups[key.split("|")[0]].append(float(value))
    if len(groups) < 2:
        return mean_figure(samples)
    x = np.array([np.mean(v) for v in groups.values()])
    value = float(np.mean(list(samples.values())))
    lo, hi = clustered_interval(x)
    sem = float(np.std(x, ddof=1) / np.sqrt(len(x)))
    return Figure(value, len(x), sem, (float(lo), float(hi)),
                  f"clustered bootstrap over {len(x)} identities, at least the Student-t interval")


class RunData:
    """What the figures read: re-evaluated figures, store records, the paper's numbers."""

    def __init__(self, run, paper):
        self.run = run
        self.paper = paper
        self.results = run.results()
        self._records: dict[str, list[dict] | None] = {}

    @property
    def profile(self) -> str:
        return self.run.profile

    def has(self, claim_id: str) -> bool:
        return claim_id in self.results

    def require(self, claim_id: str) -> None:
        if not self.has(claim_id):
            raise MissingData(hint(self.run, claim_id))

    def figures(self, claim_id: str) -> dict[str, float]:
        return self.results[claim_id].figures if claim_id in self.results else {}

    def figure(self, claim_id: str, metric: str) -> float | None:
        return self.figures(claim_id).get(metric)

    def interval(self, claim_id: str, metric: str) -> Figure | None:
        """The claim's own figure with the interval idrift.evaluate gave it (None if not in the run)."""
        result = self.results.get(claim_id)
        if result is None or metric not in result.figures:
            return None
        return result.intervals.get(metric) or Figure(float(result.figures[metric]))

    def records(self, claim_id: str) -> list[dict]:
        self.require(claim_id)
        if claim_id not in self._records:
            self._records[claim_id] = self.run.records(claim_id)
        records = self._records[claim_id]
        if records is None:
            raise MissingData(f"the store {self.run.store_path} lacks the samples of {claim_id} "
                              f"(rerun `idrift run --claims {claim_id} --out {self.run.path}`)")
        return records

    def samples(self, claim_id: str, metric: str, where: Callable[[dict], bool] = lambda spec: True
                ) -> dict[str, float]:
        """'identity|prompt|seed' -> value of the claim's ok records whose spec passes `where`."""
        out = {}
        for record in self.records(claim_id):
            if record.get("status", "ok") != "ok" or not where(record["spec"]):
                continue
            value = value_of(record, metric, self.run.aggregation)
            if value is not None:
                out[sample_key(record["spec"])] = value
        return out

    def arm_samples(self, claim_id: str, arm: str, metric: str, prompt: str | None = None) -> dict[str, float]:
        """The samples of one arm of the claim (by idrift.evaluate.arm_of), optionally of one prompt."""
        from idrift.evaluate import arm_of

        arms = self.results[claim_id].claim.arms

        def where(spec: dict) -> bool:
            found = arm_of(spec, arms)
            return found is not None and found.name == arm and prompt in (None, spec["prompt_id"])

        return self.samples(claim_id, metric, where)

    def arms(self, claim_id: str):
        self.require(claim_id)
        return self.results[claim_id].claim.arms

    def paper_value(self, claim_id: str, metric: str) -> float | None:
        claim = self.paper.claims.get(claim_id)
        entry = claim.metrics.get(metric) if claim is not None else None
        return None if entry is None else float(entry.aggregate)

    def tiers(self, claim_id: str) -> list[str]:
        """The claim's prompt ids in tier order (minimal first), as far as its records hold them."""
        from idrift.data.prompts import load_prompt_set

        records = self.records(claim_id)
        measured = list(dict.fromkeys(r["spec"]["prompt_id"] for r in records))
        claim = CLAIMS_BY_ID.get(claim_id)
        prompt_set = claim.samples.prompt_set if claim is not None else "complexity_v1"
        order = {p.id: (p.tier if p.tier is not None else i) for i, p in enumerate(load_prompt_set(prompt_set))}
        return sorted(measured, key=lambda p: (order.get(p, len(order)), measured.index(p)))

    def faceless(self, *claim_ids: str) -> bool:
        """True when ID_sim was measured on these claims and no generated image had a face."""
        detected: list[float] = []
        for claim_id in claim_ids:
            rates = [v for k, v in self.figures(claim_id).items() if k.startswith("detection_rate[")]
            if rates or claim_id not in self.results:
                detected += rates
                continue
            try:
                records = self.records(claim_id)
            except MissingData:
                continue
            detected += [float(r["metrics"]["id_sim"].get("id_sim") is not None)
                         for r in records if "id_sim" in r.get("metrics", {})]
        return bool(detected) and max(detected) == 0.0

    def provenance_text(self) -> str:
        prov = self.run.provenance
        weights = ", ".join(f"{k}={v}" for k, v in sorted((prov.get("weights") or {}).items()))
        return (f"run {self.run.path}; command {self.run.doc['command']}; profile {prov.get('profile')}; "
                f"tier {prov.get('tier')}; gpu {prov.get('gpu') or 'none'}; device {prov.get('device')}; "
                f"aggregation {prov.get('aggregation')}; weights {weights or 'not recorded'}")
