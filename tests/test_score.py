"""`idrift score`: another method's folder measured by the engine that measures generated samples.

Real code throughout: a tiny `idrift run`, its export as a method folder, dlib on real photographs,
the random-VGG LPIPS of the tiny profile, real SQLite stores, and compare / bless / report on the result.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from idrift.cli import main
from idrift.config import RunSpec
from idrift.scoring.manifest import ScoreManifestError, load_score_manifest
from idrift.store import ResultsStore

SPEC = dict(backbone="schnell", steps=4, guidance=0.0, alpha=1.0, prompt_id="portrait", prompt="A portrait",
            identity="id0", seed=0, width=64, height=64, dtype="float32", profile="tiny")


def test_method_field_leaves_existing_keys_alone_and_names_scored_samples():
    assert RunSpec(**SPEC).key == RunSpec(**SPEC, method="").key
    assert RunSpec(**SPEC, method="pulid").key != RunSpec(**SPEC).key
    scored = RunSpec(**{**SPEC, "backbone": "", "steps": 0, "width": 0, "height": 0}, method="pulid")
    assert scored.method == "pulid"
    with pytest.raises(ValueError, match="backbone"):  # only a scored image may leave the backbone unknown
        RunSpec(**{**SPEC, "backbone": ""})
    with pytest.raises(ValueError, match="steps"):
        RunSpec(**{**SPEC, "steps": 0})


def test_json_manifest_rows_and_csv_without_a_required_column(tmp_path):
    rows = [{"image": "a.png", "method": "pulid", "identity": "x", "reference": "r.png", "prompt": "a photo",
             "seed": 3, "steps": 4, "note": "kept"},
            {"image": "b.png", "method": "pulid", "identity": "x", "prompt": "a photo", "seed": "zero"},
            "not an object"]
    (tmp_path / "m.json").write_text(json.dumps({"rows": rows}))
    manifest = load_score_manifest(tmp_path / "m.json")
    [row] = manifest.rows
    assert (row.seed, row.steps, row.extra, row.image) == (3, 4, {"note": "kept"}, tmp_path / "a.png")
    assert row.prompt_id == load_score_manifest(tmp_path / "m.json").rows[0].prompt_id  # stable default id
    assert [p.line() for p in manifest.problems] == [
        "row 2: seed must be a whole number, got 'zero'",
        "row 3: expected an object with the columns image, method, identity, prompt, seed, got a str"]
    (tmp_path / "m.csv").write_text("image,method,identity,prompt\na.png,pulid,x,a photo\n")
    with pytest.raises(ScoreManifestError, match="the header lacks seed"):
        load_score_manifest(tmp_path / "m.csv")


def _write(path: Path, array: np.ndarray) -> str:
    Image.fromarray(array).save(path)
    return path.name


@pytest.mark.slow
def test_bad_rows_are_listed_and_the_good_ones_scored_and_kept(tmp_path, astronaut, capsys):
    from skimage import data

    head = _write(tmp_path / "astronaut_ref.png", astronaut[:320])
    cup = _write(tmp_path / "coffee.png", data.coffee())
    flipped = _write(tmp_path / "flipped.png", astronaut[:, ::-1].copy())
    same = _write(tmp_path / "same.png", astronaut[:320])
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    header = "image,method,identity,reference,prompt,prompt_id,seed,steps"
    lines = [
        f"{flipped},infu,astro,{head},a photo,portrait,0,28",    # 1 good
        f"{same},pulid,astro,,a photo,portrait,0,",              # 2 good: the reference itself
        "later.png,pulid,astro,,a photo,beach,0,",               # 3 missing file
        "broken.png,pulid,astro,,a photo,suit,0,",               # 4 unreadable file
        f"{flipped},pulid,ghost,,a photo,portrait,0,",           # 5 unknown identity
        f"{same},infu,astro,,a photo,portrait,0,28",             # 6 duplicate of row 1
        f"{flipped},pulid,cup,{cup},a photo,portrait,0,",        # 7 reference without a face
        f"{same},infu,astro,,a photo,portrait,x,",               # 8 bad seed
        f"{same},infu,astro,,a photo,portrait,0,4",              # 9 good: infu's second budget
    ]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join([header, *lines]) + "\n")
    out = tmp_path / "scored"
    args = ["score", str(manifest), "--profile", "tiny", "--out", str(out), "--reference", "infu"]
    assert main(args) == 1  # rows were left out
    printed = capsys.readouterr().out
    doc = json.loads((out / "results.json").read_text())
    rejected = doc["scored"]["rejected"]
    assert [line.split(":")[0] for line in rejected] == [f"row {n}" for n in (3, 4, 5, 6, 7, 8)]
    assert "file not found" in rejected[0] and "later.png" in rejected[0]
    assert "not a readable image" in rejected[1]
    assert "unknown identity 'ghost'" in rejected[2]
    assert "duplicate of row 1" in rejected[3]
    assert "no face" in rejected[4] and "coffee.png" in rejected[4]
    assert "seed must be a whole number" in rejected[5]
    assert all(line in printed for line in rejected)
    assert doc["scored"]["n_scored"] == 3

    figures = doc["claims"]["score_methods"]["figures"]
    assert figures["id_sim[pulid]"] > 0.99  # the reference photograph scored against itself
    assert 0.9 < figures["id_sim[infu]"] < figures["id_sim[pulid]"]  # the mirror: same person, other pixels
    assert figures["id_sim_delta[pulid]"] == pytest.approx(figures["id_sim[pulid]"] - figures["id_sim[infu]"])
    assert figures["detection_rate[pulid]"] == 1.0
    assert -1.0 <= figures["clip_t[pulid]"] <= 1.0 and "clip_t_delta[pulid]" in figures  # text alignment (tiny CLIP)
    outcome = {o["metric"]: o for o in doc["claims"]["score_methods"]["expectations"]}
    assert outcome["id_sim_delta[pulid]"]["status"] == "NOT JUDGEABLE"  # dlib and a random VGG: not the paper's
    drift = doc["claims"]["score_drift"]["figures"]
    assert drift["peak_step[infu]"] == 4.0 and drift["drop[infu]"] > 0  # the head at 4 steps, its mirror at 28

    with ResultsStore(out / "store", readonly=True) as store:
        before = {r.spec_key: {m: e["created"] for m, e in r.metrics.items()} for r in store.samples()}
    _write(tmp_path / "later.png", astronaut[:, ::-1].copy())  # row 3's file appears
    assert main(args) == 1
    assert "4 of 9 row(s) usable, 1 new or changed" in capsys.readouterr().err
    with ResultsStore(out / "store", readonly=True) as store:
        after = {r.spec_key: {m: e["created"] for m, e in r.metrics.items()} for r in store.samples()}
    assert len(after) == 4 and all(after[k] == v for k, v in before.items())  # nothing measured twice
    assert json.loads((out / "results.json").read_text())["scored"]["n_scored"] == 4


@pytest.mark.slow
def test_an_exported_tiny_run_scores_to_the_runs_own_values(tmp_path, capsys):
    run_dir, folder, scored = tmp_path / "run", tmp_path / "exported", tmp_path / "scored"
    assert main(["run", "--profile", "tiny", "--claims", "table1_dev4_diagnostic", "--out", str(run_dir)]) == 0
    assert main(["export", str(run_dir), str(folder)]) == 0
    manifest = folder / "manifest.csv"
    assert manifest.read_text().startswith("image,method,identity,reference,prompt,prompt_id,seed,steps,run_key")
    assert main(["score", str(manifest), "--profile", "tiny", "--out", str(scored)]) == 0
    capsys.readouterr()

    compared = 0
    with ResultsStore(run_dir / "store", readonly=True) as ran, ResultsStore(scored / "store", readonly=True) as got:
        for record in got.samples():
            original = ran.get(record.provenance["columns"]["run_key"])
            assert record.image_sha256 == original.image_sha256
            for metric, entry in original.metrics.items():
                values = {k: v for k, v in entry["values"].items() if k != "sample"}  # "sample" names the key
                assert {k: v for k, v in record.metrics[metric]["values"].items() if k != "sample"} == values, metric
                compared += 1
    assert compared >= 4 * 3  # pixels, id_sim and lpips of each of the 4 samples

    ran_figures = json.loads((run_dir / "results.json").read_text())["claims"]["table1_dev4_diagnostic"]["figures"]
    doc = json.loads((scored / "results.json").read_text())
    assert doc["scored"]["arms"] == {"score_methods": [["idrift-dev", 28]],
                                     "score_drift": [["idrift-dev", 4], ["idrift-dev", 28]]}
    drift = doc["claims"]["score_drift"]["figures"]
    assert drift["id_sim[idrift-dev-4]"] == ran_figures["id_sim[dev-4]"]
    assert drift["id_sim[idrift-dev-28]"] == ran_figures["id_sim[dev-28]"]

    baseline = tmp_path / "scored-baseline.json"
    assert main(["bless", str(scored), "--name", str(baseline), "--yes"]) == 0
    assert "new baseline with 2 claim(s)" in capsys.readouterr().out
    assert main(["compare", str(scored), "--baseline", str(baseline), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["claim"] for r in rows} == {"score_methods", "score_drift"}
    assert not [r for r in rows if r["status"] in ("FAIL", "missing")]
    assert main(["compare", str(scored), "--baseline", "tiny-cpu"]) == 0  # no entry for scored claims: 'no baseline'
    assert main(["report", str(scored)]) == 0
    report = (scored / "report" / "report.md").read_text()
    assert "is a scored folder (`idrift score`), which holds no table1_backbone_swap claim" in report
    assert f"--out {scored}`" not in report  # a run's claims are not added to a scored folder
