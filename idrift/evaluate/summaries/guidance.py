"""The guidance family's summary (Figure 5, right): schnell-4 at several guidance scales on the
same samples, whether its images change with the scale at all (schnell has no guidance embedding) and
how far ID_sim moves across the scales."""

from __future__ import annotations

import numpy as np

from idrift.evaluate.figures import image_digest, put_per_arm
from idrift.evaluate.records import ClaimResult, Table, id_sim_of


def summary_guidance(result: ClaimResult, table: Table) -> None:
    put_per_arm(result, table, ("id_sim", "pixel_mean"))
    names = [arm.name for arm in result.claim.arms]
    keys = set.intersection(*(set(table.by_arm.get(n, {})) for n in names)) if names else set()
    varying, id_ranges = 0, []
    for key in sorted(keys):
        records = [table.by_arm[n][key] for n in names]
        varying += len({image_digest(r) for r in records}) > 1
        sims = [id_sim_of(r, table.aggregation) for r in records]
        if all(s is not None for s in sims):
            id_ranges.append(max(sims) - min(sims))
    if keys:
        result.figures["samples_varying_with_guidance"] = float(varying)
    if id_ranges:
        result.figures["id_sim_range"] = float(max(id_ranges))
    all_sims = [v for n in names for v in table.values(n, "id_sim").values()]
    if all_sims:
        result.figures["id_sim_mean"] = float(np.mean(all_sims))  # the paper's one number over all scales
