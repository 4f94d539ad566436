"""A run directory written out as another method's folder: images, references and a manifest.

`idrift export RUN_DIR FOLDER` copies every finished sample's PNG (byte for byte) to
FOLDER/images/<method>/<identity>/<prompt_id>_seed<seed>_steps<steps>.png, each identity's reference
photograph to FOLDER/references/, and writes FOLDER/manifest.csv (idrift.scoring.manifest's columns plus
`run_key`, the sample's key in the run's store). Scoring that folder with the run's profile gives the
run's own per-sample values (docs/scoring.md): the round trip that checks `idrift score` measures
exactly as a run does, and a ready example of the manifest format.

A sample's method is named after its arm without the step budget (which is the `steps` column):
idrift-dev, idrift-schnell, idrift-dev-traj, idrift-schnell-g0.5, idrift-dev-a0.5-traj, ...
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from idrift.config import BACKBONE_GUIDANCE
from idrift.errors import IdriftError
from idrift.scoring.manifest import write_manifest_csv

MANIFEST_FILE = "manifest.csv"


def method_label(spec: dict) -> str:
    """The exported method of a generated sample: what its arm is, but the step budget."""
    label = f"idrift-{spec['backbone']}"
    if spec["guidance"] != BACKBONE_GUIDANCE[spec["backbone"]]:
        label += f"-g{spec['guidance']:g}"
    if spec["alpha"] != 1.0:
        label += f"-a{spec['alpha']:g}"
    if spec["mode"] == "trajectory":
        label += "-traj"
    if spec.get("acceleration", "eager") != "eager":
        label += "-" + re.sub(r"[^A-Za-z0-9_.+-]", "-", spec["acceleration"])
    if spec.get("loras"):
        label += "-lora"
    return label


def _references(run, folder: Path) -> dict[str, str]:
    """identity -> the reference photograph copied under FOLDER/references (relative path)."""
    from idrift.data.identities import load_manifest

    path = run.doc["options"].get("identities")
    if not path:
        raise IdriftError(f"run {run.path} has no identity manifest (a synthetic run?): its references cannot be "
                          "exported; export a tiny or real run")
    manifest = load_manifest(path)
    (folder / "references").mkdir(parents=True, exist_ok=True)
    out = {}
    for entry in manifest.entries:
        source = manifest.image_file(entry)
        target = folder / "references" / f"{entry.identity_id}{source.suffix.lower()}"
        shutil.copyfile(source, target)
        out[entry.identity_id] = target.relative_to(folder).as_posix()
    return out


def export_run(run_dir: str | Path, folder: str | Path, claim_ids: list[str] | None = None) -> tuple[Path, int]:
    """Write the run's samples (of `claim_ids`, default every claim but latency) as a method folder;
    returns (the manifest, its number of rows)."""
    from idrift.run_folder import load_run

    run = load_run(run_dir)
    if "scored" in run.doc:
        raise IdriftError(f"{run.path} is a scored folder (`idrift score`), not a run: its images are in the "
                          f"folder its manifest names ({run.doc['scored']['manifest']})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    references = _references(run, folder)
    store = run.open_store()
    if store is None:
        raise IdriftError(f"run {run.path} has no store ({run.store_path}): nothing to export")
    rows: dict[tuple, dict] = {}
    try:
        for claim in run.claims:
            if "latency" in claim.metrics or (claim_ids and claim.id not in claim_ids):  # timed: no method images
                continue
            for key in run.doc["claims"][claim.id]["spec_keys"]:
                record = store.get(key)
                if record is None or not record.ok:
                    continue
                spec = record.spec
                method = method_label(spec)
                sample = (method, spec["identity"], spec["prompt_id"], spec["seed"], spec["steps"])
                if sample in rows:
                    if rows[sample]["run_key"] != key:
                        raise IdriftError(f"samples {rows[sample]['run_key']} and {key} of {run.path} would both be "
                                          f"exported as {sample}; export their claims separately (--claims)")
                    continue
                name = f"{spec['prompt_id']}_seed{spec['seed']}_steps{spec['steps']}.png"
                image = Path("images", method, spec["identity"], name)
                (folder / image).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(record.image_path, folder / image)
                rows[sample] = {"image": image.as_posix(), "method": method, "identity": spec["identity"],
                                "reference": references.get(spec["identity"], ""), "prompt": spec["prompt"],
                                "prompt_id": spec["prompt_id"], "seed": spec["seed"], "steps": spec["steps"],
                                "run_key": key}
    finally:
        store.close()
    if not rows:
        raise IdriftError(f"run {run.path} holds no finished sample to export")
    return write_manifest_csv(folder / MANIFEST_FILE, list(rows.values())), len(rows)
