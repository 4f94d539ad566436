"""The backbone_swap family's summaries: dev-28 against schnell-4 (and the dev-4 diagnostic) on the same
identities, prompts and seeds, the paper's Table 1, Table 2 (per prompt) and Figure 3 (per identity)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from idrift.evaluate.figures import mean_of, paired_delta, put_figure, put_per_arm
from idrift.evaluate.records import ClaimResult, Table


def summary_backbone_swap(result: ClaimResult, table: Table) -> None:
    put_per_arm(result, table, ("id_sim", "lpips", "pixel_mean"))
    put_figure(result, "id_sim_delta",
               paired_delta(table.values("dev-28", "id_sim"), table.values("schnell-4", "id_sim")))
    put_figure(result, "lpips_delta", paired_delta(table.values("dev-28", "lpips"), table.values("schnell-4", "lpips")))


def summary_dev4_diagnostic(result: ClaimResult, table: Table) -> None:
    put_per_arm(result, table, ("id_sim", "pixel_mean"))
    put_figure(result, "id_sim_delta", paired_delta(table.values("dev-28", "id_sim"), table.values("dev-4", "id_sim")))


def summary_by_prompt(result: ClaimResult, table: Table) -> None:
    dev, schnell = table.values("dev-28", "id_sim"), table.values("schnell-4", "id_sim")
    prompts = sorted({k.split("|")[1] for k in dev.keys() | schnell.keys()})
    deltas = []
    for prompt in prompts:
        d = {k: v for k, v in dev.items() if k.split("|")[1] == prompt}
        s = {k: v for k, v in schnell.items() if k.split("|")[1] == prompt}
        put_figure(result, f"id_sim[dev-28|{prompt}]", d)
        put_figure(result, f"id_sim[schnell-4|{prompt}]", s)
        delta = paired_delta(d, s)
        put_figure(result, f"delta[{prompt}]", delta)
        if delta:
            deltas.append(mean_of(delta))
    if deltas:
        result.figures["min_prompt_delta"] = float(min(deltas))


def summary_per_identity(result: ClaimResult, table: Table) -> None:
    dev, schnell = table.values("dev-28", "id_sim"), table.values("schnell-4", "id_sim")
    by_identity: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for key in dev.keys() & schnell.keys():
        by_identity[key.split("|")[0]].append((dev[key], schnell[key]))
    if by_identity:
        wins = {ident: float(np.mean([s for _, s in pairs]) >= np.mean([d for d, _ in pairs]))
                for ident, pairs in by_identity.items()}
        result.figures["fraction_schnell_ge_dev"] = float(np.mean(list(wins.values())))
        result.figures["n_identities"] = float(len(wins))
