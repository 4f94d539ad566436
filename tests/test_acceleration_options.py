"""Acceleration options of a claim run (--idrift-accelerate, --idrift-step-cache, --idrift-memory,
--idrift-allow-lossy-baselines): spec keys, provenance, baselines, usage errors. Real tiny CPU runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from idrift.accel.plan import AccelerationPlan
from idrift.baselines.io import load_baseline
from idrift.baselines.provenance import provenance_mismatches
from idrift.baselines.update import update_baseline
from idrift.claims import CLAIMS_BY_ID
from idrift.config import RunSpec
from idrift.errors import IdriftError
from idrift.session import REPO_BASELINES, BenchmarkSession, SessionOptions

CHEAP_CLAIM = "table1_dev4_diagnostic"  # two samples per identity on the smoke tier


def spec(**changes) -> RunSpec:
    fields = dict(backbone="schnell", steps=4, guidance=0.0, alpha=1.0, prompt_id="portrait", prompt="a portrait",
                  identity="id000", seed=0, width=64, height=64, dtype="float32", profile="tiny", weights="abc")
    fields.update(changes)
    return RunSpec(**fields)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """The built-in identity set cut to its first identity (as tests/test_cli.py does)."""
    from idrift.data.identities import builtin_identity_set, load_manifest, write_manifest

    full = load_manifest(builtin_identity_set(tmp_path_factory.mktemp("identities")))
    return write_manifest(full.path.parent / "one.json", full.entries[:1],
                          created_with={"tool": "tests/test_acceleration_options.py: first identity"})


def session(tmp_path: Path, manifest: Path, **options) -> BenchmarkSession:
    return BenchmarkSession(SessionOptions(store=str(tmp_path / "store"), identities=str(manifest),
                                           cache_dir=str(tmp_path / "cache"), **options))


# ------------------------------------------------------------------------------------------ keys


def test_eager_key_is_the_key_from_before_the_field_existed():
    s = spec()
    fields = s.as_dict()
    assert fields.pop("acceleration") == "eager"
    assert fields.pop("loras") == ""  # added later still: also left out of the key while empty
    assert fields.pop("method") == ""  # added with `idrift score`: the same rule
    # The formula of RunSpec.key before `acceleration` was added: every other field, sorted, compact JSON.
    old = hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:20]
    assert s.key == old
    assert RunSpec(**fields) == s  # a store row written before the field reads back as eager


def test_lossless_and_lossy_labels_change_the_key():
    keys = {label: spec(acceleration=label).key
            for label in ("eager", "lossless", "lossy:fbc0.12", "lossy:fbc0.08", "lossy:fp8+fbc0.12+8bit")}
    assert len(set(keys.values())) == len(keys)
    with pytest.raises(ValueError, match="RunSpec.acceleration"):
        spec(acceleration="fast")


def test_acceleration_plan_labels():
    """One canonical label per plan, read back by its grammar (no free-form dicts any more)."""
    assert AccelerationPlan().label == "eager"
    assert AccelerationPlan("lossless").label == "lossless" and not AccelerationPlan("lossless").lossy
    assert AccelerationPlan(memory="offload").label == "offload"
    assert AccelerationPlan("stock-compile").label == "stock-compile"
    lossy = AccelerationPlan("fp8", step_cache=0.12, memory="offload-8bit")
    assert lossy.label == "lossy:fp8+fbc0.12+8bit" and lossy.lossy and not lossy.reversible
    assert [t.name for t in lossy.techniques] == ["fp8", "memory_offload_8bit", "step_cache"]
    assert AccelerationPlan("lossless", step_cache=0.12).label == "lossy:lossless+fbc0.12"  # not eager + fbc
    for plan in (AccelerationPlan(), lossy, AccelerationPlan("lossless", memory="offload"),
                 AccelerationPlan(step_cache=0.08)):
        assert AccelerationPlan.from_label(plan.label) == plan
    for bad in ("fast", "lossless+lossless", "fp8", "lossy:lossless", "lossy:fbc", "fbc0.12", "lossy:fbc0.12+fp8"):
        with pytest.raises(ValueError, match="acceleration label"):
            AccelerationPlan.from_label(bad)
    assert AccelerationPlan("fp8").cpu_reason().startswith("lossy:fp8: needs a CUDA GPU")
    assert AccelerationPlan("lossless").cpu_reason() is None


# -------------------------------------------------------------------------------------- sessions


def test_step_cache_session_labels_specs_and_provenance_lossy(tmp_path, manifest):
    claim = CLAIMS_BY_ID[CHEAP_CLAIM]
    eager = session(tmp_path, manifest)
    lossy = session(tmp_path, manifest, step_cache=0.12)
    eager_specs, lossy_specs = eager.specs(claim), lossy.specs(claim)
    assert {s.acceleration for s in eager_specs} == {"eager"}
    assert {s.acceleration for s in lossy_specs} == {"lossy:fbc0.12"}
    assert [s.replace(acceleration="eager") for s in lossy_specs] == eager_specs
    assert not {s.key for s in eager_specs} & {s.key for s in lossy_specs}  # one store never mixes them

    lossy.run_claim(claim)
    acceleration = lossy.provenance["acceleration"]
    assert acceleration["lossy"] is True and acceleration["label"] == "lossy"
    assert acceleration["spec_label"] == "lossy:fbc0.12"
    assert acceleration["step_cache"]["threshold"] == 0.12
    stats = acceleration["step_cache_stats"]
    assert stats["images"] == len(lossy_specs) and stats["skipped"] > 0  # random tiny weights: most steps alike
    # The store's run row and its samples say how they were made.
    [run] = [r for r in lossy.store.runs() if r["run_id"] == lossy.store.run_id]  # the eager session's is there too
    assert run["provenance"]["acceleration"]["spec_label"] == "lossy:fbc0.12"
    assert all(lossy.store.get(s).spec["acceleration"] == "lossy:fbc0.12" for s in lossy_specs)
    assert "lossy:fbc0.12" in lossy.acceleration_line() and "LOSSY" in lossy.acceleration_line()
    assert eager.acceleration_line() is None


def test_lossless_and_memory_offload_build_on_cpu(tmp_path, manifest):
    s = session(tmp_path, manifest, accelerate="lossless", memory="offload")
    assert s.options.plan.label == "lossless+offload" and not s.options.lossy
    acceleration = s.provenance["acceleration"]
    assert acceleration["spec_label"] == "lossless+offload" and acceleration["lossy"] is False
    assert "compile" in acceleration["skipped"]  # compile="auto" skips compiling on a CPU, and says so
    assert "text_encoder_offload_leaf" in s.provenance["memory"]["techniques"]
    assert s.provenance["memory"]["lossy"] is False


def test_eager_provenance_builds_no_pipeline(tmp_path, manifest):
    s = session(tmp_path, manifest)
    assert s.provenance["acceleration"]["spec_label"] == "eager"
    assert not s.has_pipeline()


# -------------------------------------------------------------------------------------- baselines


def test_lossy_baseline_update_is_refused_unless_allowed(tmp_path, manifest):
    with pytest.raises(IdriftError, match="--idrift-allow-lossy-baselines"):
        SessionOptions(update_baselines=True, step_cache=0.12)
    with pytest.raises(IdriftError, match="--idrift-allow-lossy-baselines"):
        SessionOptions(update_baselines=True, memory="offload-8bit")
    SessionOptions(update_baselines=True, accelerate="lossless", memory="offload")  # lossless: fine

    target = tmp_path / "lossy-baseline.json"
    s = session(tmp_path, manifest, step_cache=0.12, update_baselines=True, allow_lossy_baselines=True,
                baseline=str(target))
    s.run_claim(CLAIMS_BY_ID[CHEAP_CLAIM])
    # The last guard (also `idrift bless`'s): a lossy session that is not allowed writes nothing.
    s.options.allow_lossy_baselines = False
    [line] = update_baseline(s)
    assert "not rewriting" in line and "lossless pipeline" in line and "lossy:fbc0.12" in line
    assert not target.exists()

    s.options.allow_lossy_baselines = True
    lines = update_baseline(s)
    assert lines[0].startswith(f"baseline {target} rewritten")
    written = load_baseline(target)
    assert written.provenance["acceleration"]["lossy"] is True
    assert written.provenance["acceleration"]["spec_label"] == "lossy:fbc0.12"
    assert "--idrift-step-cache 0.12 --idrift-allow-lossy-baselines" in written.provenance["command"]
    assert "LOSSY" in written.description


def test_gate_notes_the_acceleration_difference(tmp_path, manifest):
    eager_baseline = load_baseline(REPO_BASELINES / "tiny-cpu.json").provenance  # recorded no acceleration
    lossy = session(tmp_path, manifest, step_cache=0.12)
    run = dict(eager_baseline, acceleration=lossy.acceleration_provenance())
    notes = provenance_mismatches(eager_baseline, run)
    assert notes == ["acceleration: baseline eager, this run lossy:fbc0.12 "
                     "(lossy: its numbers deviate from the reference path)"]
    eager_run = dict(eager_baseline, acceleration=session(tmp_path, manifest).acceleration_provenance())
    assert provenance_mismatches(eager_baseline, eager_run) == []


# ------------------------------------------------------------------------------------ command lines

BENCH = '''
from idrift.pytest_plugin import check_claim, run_sample

CLAIM_FAMILY = "guidance"


def test_sample(idrift_session, idrift_sample):
    run_sample(idrift_session, idrift_sample)


def test_claim(idrift_session, idrift_claim, request):
    check_claim(idrift_session, idrift_claim, request)
'''


@pytest.mark.parametrize("args, env, message", [
    (["--idrift-accelerate", "lossy"], {}, "--idrift-accelerate lossy: fp8 matmuls need a CUDA GPU"),
    (["--idrift-step-cache", "0.1", "--idrift-update-baselines"], {},
     "--idrift-update-baselines with a lossy pipeline (--idrift-step-cache 0.1)"),
    (["--idrift-accelerate", "fast"], {}, "argument --idrift-accelerate: invalid choice: 'fast'"),
    (["--idrift-memory", "8bit"], {}, "argument --idrift-memory: invalid choice: '8bit'"),
    (["--idrift-step-cache", "-1"], {}, "argument --idrift-step-cache: the First-Block-Cache threshold"),
    ([], {"IDRIFT_ACCELERATE": "fast"}, "--idrift-accelerate must be one of eager, lossless, lossy, got 'fast'"),
    (["--idrift-batch-size", "0"], {}, "--idrift-batch-size must be a whole number >= 1, got 0"),
])
def test_pytest_usage_errors_name_the_option(pytester, monkeypatch, args, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(test_bench=BENCH)
    result = pytester.runpytest("-p", "idrift.pytest_plugin", "--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.mark.slow
def test_pytest_lossy_run_is_labelled_and_blesses_only_when_allowed(pytester, manifest):
    pytester.makepyfile(test_bench=BENCH)
    baseline = pytester.path / "fbc.json"
    common = ["-p", "idrift.pytest_plugin", "--idrift-identities", str(manifest), "--idrift-store",
              str(pytester.path / "store"), "--idrift-baseline", str(baseline), "--idrift-step-cache", "0.12"]
    result = pytester.runpytest(*common, "--idrift-update-baselines", "--idrift-allow-lossy-baselines")
    result.assert_outcomes(passed=16)  # 15 samples (5 guidance scales x 3 prompts) and the claim
    result.stdout.fnmatch_lines(["acceleration lossy:fbc0.12 (--idrift-step-cache 0.12): LOSSY*",
                                 f"baseline {baseline} rewritten*"])
    assert load_baseline(baseline).provenance["acceleration"]["spec_label"] == "lossy:fbc0.12"


def test_idrift_run_help_lists_the_options(capsys):
    from idrift.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    shown = capsys.readouterr().out
    for option in ("--accelerate {eager,lossless,lossy}", "--step-cache THRESHOLD",
                   "--memory {off,offload,offload-8bit}", "--batch-size N"):
        assert option in shown


def test_idrift_run_errors_name_the_option(tmp_path, capsys):
    from idrift.cli import main

    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--accelerate", "lossy", "--claims", CHEAP_CLAIM]) == 2
    err = capsys.readouterr().err
    assert "idrift run: error: --accelerate lossy: fp8 matmuls need a CUDA GPU" in err and "Traceback" not in err
    assert not out.exists()  # refused before anything was made
    with pytest.raises(SystemExit):
        main(["run", "--out", str(out), "--step-cache", "abc"])
    assert "argument --step-cache: the First-Block-Cache threshold must be a number >= 0" in capsys.readouterr().err
    assert main(["run", "--out", str(out), "--batch-size", "0", "--claims", CHEAP_CLAIM]) == 2
    err = capsys.readouterr().err
    assert "--batch-size must be a whole number >= 1, got 0" in err and "IDRIFT_BATCH_SIZE" not in err
    assert not out.exists()


def test_idrift_run_records_the_label_and_bless_refuses_lossy_unless_asked(tmp_path, manifest, monkeypatch, capsys):
    from idrift.cli import main

    monkeypatch.setenv("IDRIFT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["run", "--out", str(out), "--claims", CHEAP_CLAIM, "--identities", str(manifest)]
    assert main([*args, "--step-cache", "0.12"]) == 0
    assert "acceleration lossy:fbc0.12: LOSSY" in capsys.readouterr().out
    doc = json.loads((out / "results.json").read_text())
    assert doc["options"]["acceleration"] == "lossy:fbc0.12"
    assert doc["claims"][CHEAP_CLAIM]["provenance"]["acceleration"]["lossy"] is True
    # The same directory with eager options: refused, so that one results.json describes one setup.
    assert main(args) == 2
    assert "acceleration 'lossy:fbc0.12' there, 'eager' here" in capsys.readouterr().err
    # `idrift bless` makes no baseline of a lossy run unless asked; asked, the baseline says lossy.
    target = tmp_path / "blessed.json"
    assert main(["bless", str(out), "--name", str(target), "--yes"]) == 2
    assert "identity baselines need a lossless pipeline" in capsys.readouterr().err and not target.exists()
    assert main(["bless", str(out), "--name", str(target), "--yes", "--allow-lossy"]) == 0
    assert load_baseline(target).provenance["acceleration"]["spec_label"] == "lossy:fbc0.12"
