"""The bad-input and fault catalogue: each case gives one clear line naming the input, the right exit code,
no traceback, and loses nothing already stored.

Three kinds of case, all in-process (no subprocess start-up):
- pytest: a benchmark-like module under pytester with a bad option or environment variable; the session
  stops once with one `ERROR:` line (pytest.UsageError, exit code 4) before any sample is generated.
- `idrift ...`: idrift.cli.main with bad arguments; one `idrift X: error:` line on stderr, exit code 2.
- faults on disk: truncated, replaced or missing images, corrupt weight files, a full disk, a read-only
  folder, two processes on one store.

`stored` is a results store holding one sample; every case that could touch a store points at it (or at
a copy) and checks afterwards that its rows and image bytes are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import struct
from pathlib import Path

import onnx  # noqa: F401  (as idrift.checks below: onnx's nanobind extension aborts the process when imported twice)
import onnxruntime  # noqa: F401
import pytest
import torch
from PIL import Image

import idrift.checks  # noqa: F401  (imported here, not first inside a pytester run: pytester drops the
import idrift.pipeline.infinite_you  # noqa: F401  modules a run imported, and torch (its inductor, through
import idrift.runner  # noqa: F401  diffusers) cannot register its libraries twice)
import idrift.session  # noqa: F401
from idrift import env as idrift_env
from idrift.cli import main as idrift_main
from idrift.config import RunSpec
from idrift.store import MergeConflictError, ResultsStore, StoreError, merge_stores

REPO = Path(__file__).resolve().parents[1]


def _spec(seed: int = 0) -> RunSpec:
    return RunSpec(backbone="schnell", steps=4, guidance=0.0, alpha=1.0, prompt_id="portrait", prompt="a portrait",
                   identity="id0", seed=seed, width=64, height=64, dtype="float32", profile="tiny")


def _image(value: int) -> Image.Image:
    return Image.new("RGB", (64, 64), (value, 255 - value, 7))


def _make_store(path: Path, seeds=(0,)) -> Path:
    with ResultsStore(path) as store:
        store.start_run(argv=["test"], provenance={"profile": "tiny"})
        for seed in seeds:
            store.put_generation(_spec(seed), _image(10 + seed), {"total": 0.1}, {"profile": "tiny"})
            store.put_metrics(_spec(seed).key, "pixels", "v1", {"pixel_mean": 1.0 + seed})
    return path


def _snapshot(path: Path) -> dict:
    """Rows of samples/metrics and the bytes of every image: what 'nothing stored was lost' compares."""
    conn = sqlite3.connect(f"{(path / 'results.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        rows = [tuple(r) for r in conn.execute("SELECT spec_key, status, image_sha256 FROM samples ORDER BY spec_key")]
        metrics = [tuple(r) for r in conn.execute('SELECT spec_key, metric, "values" FROM metrics ORDER BY 1, 2')]
    finally:
        conn.close()
    images = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((path / "images").glob("*.png"))}
    return {"rows": rows, "metrics": metrics, "images": images}


@pytest.fixture()
def stored(tmp_path):
    """A store with one finished sample, and a check that it is intact afterwards."""
    path = _make_store(tmp_path / "stored")
    before = _snapshot(path)
    yield path
    assert _snapshot(path) == before, "a bad input changed or lost what was stored"


def one_line(text: str, *names: str, prefix: str = "") -> str:
    """The single error line of `text` (others may be pytest's own status lines); it names every `names`."""
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith(prefix) and "error" in line.lower()]
    assert len(errors) == 1, text
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]


# --------------------------------------------------------------------------------------------- pytest

BENCH = """
CLAIM_FAMILY = "guidance"


def test_sample(idrift_sample):
    raise AssertionError("a bad input must stop the session before any sample")
"""


@pytest.fixture()
def bench(pytester, monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("IDRIFT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IDRIFT_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_bench=BENCH)

    def run(*args: str):
        result = pytester.runpytest_inprocess("-p", "idrift.pytest_plugin", "-p", "no:cacheprovider", *args)
        return result.ret, "\n".join(result.outlines + result.errlines)

    return run


ENV_CASES = [
    ("IDRIFT_BATCH_SIZE", "abc"), ("IDRIFT_BATCH_SIZE", "-3"), ("IDRIFT_REQUIRE_REAL", "maybe"),
    ("IDRIFT_ALLOW_LOSSY_BASELINES", "perhaps"), ("IDRIFT_PROFILE", "nonsense"), ("IDRIFT_TIER", "huge"),
    ("IDRIFT_ACCELERATE", "warp"), ("IDRIFT_MEMORY", "lots"),
]


@pytest.mark.parametrize(("name", "value"), ENV_CASES, ids=[f"{n}={v}" for n, v in ENV_CASES])
def test_pytest_bad_environment_variable(bench, monkeypatch, stored, name, value):
    monkeypatch.setenv(name, value)
    ret, out = bench("--idrift-store", str(stored))
    assert ret == pytest.ExitCode.USAGE_ERROR, out
    one_line(out, name, value, prefix="ERROR:")


def _baseline(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad-baseline.json"
    path.write_text(text, encoding="utf-8")
    return path


def _tiny_baseline_with(change) -> str:
    doc = json.loads((REPO / "baselines" / "tiny-cpu.json").read_text())
    first = next(iter(doc["claims"].values()))
    change(doc, next(iter(first["metrics"].values())))
    return json.dumps(doc)


BASELINE_CASES = {
    "empty": lambda tmp: _baseline(tmp, ""),
    "truncated": lambda tmp: _baseline(tmp, (REPO / "baselines" / "tiny-cpu.json").read_text()[:500]),
    "not-an-object": lambda tmp: _baseline(tmp, "[1, 2]"),
    "schema-newer": lambda tmp: _baseline(tmp, _tiny_baseline_with(lambda d, m: d.update(schema_version=99))),
    "nan-tolerance": lambda tmp: _baseline(tmp, _tiny_baseline_with(lambda d, m: m.update(tolerance=float("nan")))),
    "negative-tolerance": lambda tmp: _baseline(tmp, _tiny_baseline_with(lambda d, m: m.update(tolerance=-0.1))),
    "missing-path": lambda tmp: tmp / "no-such-baseline.json",
    "a-folder": lambda tmp: tmp,
    "unknown-name": lambda tmp: "no-such-baseline-name",
}


@pytest.mark.parametrize("case", BASELINE_CASES)
def test_pytest_bad_baseline_stops_before_any_sample(bench, stored, tmp_path, case):
    given = str(BASELINE_CASES[case](tmp_path))
    ret, out = bench("--idrift-baseline", given, "--idrift-store", str(stored))
    assert ret == pytest.ExitCode.USAGE_ERROR, out
    line = one_line(out, prefix="ERROR:")
    assert given in line or Path(given).name in line, line
    if case == "a-folder":
        assert "is a folder" in line  # not "does not exist"


def _manifest(tmp_path: Path, text: str | None) -> Path:
    path = tmp_path / "manifest.json"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    return path


MANIFEST_CASES = {
    "missing": lambda tmp: _manifest(tmp, None),
    "not-json": lambda tmp: _manifest(tmp, "{nope"),
    "old-schema": lambda tmp: _manifest(tmp, json.dumps({"schema_version": 0, "entries": []})),
    "no-entries": lambda tmp: _manifest(tmp, json.dumps({"schema_version": 1, "created_with": {}, "entries": []})),
    "a-folder": lambda tmp: tmp,
}


@pytest.mark.parametrize("case", MANIFEST_CASES)
def test_pytest_bad_identity_manifest(bench, stored, tmp_path, case):
    given = str(MANIFEST_CASES[case](tmp_path))
    ret, out = bench("--idrift-identities", given, "--idrift-store", str(stored))
    assert ret == pytest.ExitCode.USAGE_ERROR, out
    one_line(out, "--idrift-identities", given, prefix="ERROR:")


def test_pytest_store_that_is_a_file(bench, tmp_path):
    file = tmp_path / "store-file"
    file.write_text("not a folder")
    ret, out = bench("--idrift-store", str(file))
    assert ret == pytest.ExitCode.USAGE_ERROR, out
    one_line(out, "--idrift-store", str(file), "not a folder", prefix="ERROR:")
    assert file.read_text() == "not a folder"


def test_pytest_store_in_an_unwritable_folder(bench, tmp_path, monkeypatch):
    import tempfile

    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):  # what a read-only folder does (root ignores chmod)
        if dir is not None and str(dir).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    ret, out = bench("--idrift-store", str(tmp_path / "ro" / "store"))
    assert ret == pytest.ExitCode.USAGE_ERROR, out
    one_line(out, "--idrift-store", "not writable", prefix="ERROR:")


def test_pytest_bad_shard_and_batch_size(bench, stored):
    for args, name in ((("--idrift-shard", "3/2"), "3/2"), (("--idrift-batch-size", "0"), "batch-size")):
        ret, out = bench(*args, "--idrift-store", str(stored))
        assert ret == pytest.ExitCode.USAGE_ERROR, out
        one_line(out, name, prefix="ERROR:")


def test_pytest_synthetic_without_a_gpu(bench, stored):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: synthetic is allowed")
    ret, out = bench("--idrift-profile", "synthetic", "--idrift-store", str(stored))
    assert ret == pytest.ExitCode.USAGE_ERROR, out
    one_line(out, "synthetic", "GPU", prefix="ERROR:")


# ------------------------------------------------------------------------------------ environment parsing


@pytest.mark.parametrize(("text", "value"), [("false", False), ("0", False), ("no", False), ("NO", False),
                                             ("off", False), ("", False), ("true", True), ("1", True),
                                             ("yes", True), ("On", True)])
def test_env_switches_read_like_options(text, value):
    # IDRIFT_ALLOW_LOSSY_BASELINES=false once let a lossy run rewrite a baseline: "false" is False.
    assert idrift_env.env_flag("IDRIFT_REQUIRE_REAL", env={"IDRIFT_REQUIRE_REAL": text}) is value
    assert idrift_env.env_flag("IDRIFT_REQUIRE_REAL", default=True, env={}) is True


def test_require_real_false_under_pytest_is_off(pytester, monkeypatch):
    monkeypatch.setenv("IDRIFT_REQUIRE_REAL", "false")
    monkeypatch.setenv("IDRIFT_ALLOW_LOSSY_BASELINES", "no")
    pytester.makepyfile(test_opt="""
def test_opt(request):
    assert request.config.getoption("--idrift-require-real") is False
    assert request.config.getoption("--idrift-allow-lossy-baselines") is False
""")
    result = pytester.runpytest_inprocess("-p", "idrift.pytest_plugin", "-p", "no:cacheprovider")
    assert result.ret == 0, result.outlines


# ---------------------------------------------------------------------------------------- idrift CLI


def idrift(capsys, *args) -> tuple[int, str]:
    code = idrift_main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err


def test_cli_unknown_claim(capsys, tmp_path):
    code, err = idrift(capsys, "run", "--claims", "figure99", "--out", tmp_path / "run")
    assert code == 2
    one_line(err, "figure99", prefix="idrift run: error:")


def test_cli_run_missing_manifest(capsys, tmp_path):
    code, err = idrift(capsys, "run", "--identities", tmp_path / "none.json", "--out", tmp_path / "run")
    assert code == 2
    one_line(err, "--identities", "none.json", prefix="idrift run: error:")


def test_cli_run_out_is_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    code, err = idrift(capsys, "run", "--out", tmp_path / "f")
    assert code == 2
    one_line(err, "--out", prefix="idrift run: error:")
    assert (tmp_path / "f").read_text() == "x"


def test_cli_run_batch_size_zero(capsys, tmp_path):
    code, err = idrift(capsys, "run", "--batch-size", "0", "--out", tmp_path / "run")
    assert code == 2
    one_line(err, "--batch-size", prefix="idrift run: error:")


def test_cli_run_synthetic_without_a_gpu(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, err = idrift(capsys, "run", "--profile", "synthetic", "--claims", "latency", "--out", tmp_path / "run")
    assert code == 2
    one_line(err, "--profile synthetic", "GPU", prefix="idrift run: error:")


def test_cli_run_real_lists_every_missing_weight(capsys, tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("IDRIFT_", "HF_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["--flux-dev", empty, "--flux-schnell", empty, "--infiniteyou", empty, "--antelopev2", empty,
            "--arcface-ir-se50", empty, "--vgg16", empty, "--clip", empty]
    code, err = idrift(capsys, "run", "--profile", "real", "--claims", "figure5_guidance", "--out", tmp_path / "run",
                       *args)
    assert code == 2 and "Traceback" not in err
    assert err.startswith("idrift run: error: 7 problems"), err  # every weight, not only the first


def test_cli_run_unreadable_results_json_same_advice_as_compare(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text("{truncated")
    code_run, err_run = idrift(capsys, "run", "--claims", "figure5_guidance", "--out", out)
    code_cmp, err_cmp = idrift(capsys, "compare", out, "--baseline", "tiny-cpu")
    assert code_run == code_cmp == 2
    advice_run = one_line(err_run, "results.json", prefix="idrift run: error:").split("); ", 1)[1]
    advice_cmp = one_line(err_cmp, "results.json", prefix="idrift compare: error:").split("); ", 1)[1]
    assert advice_run == advice_cmp and "remove it" in advice_run


def test_cli_compare_missing_run_dir(capsys, tmp_path):
    code, err = idrift(capsys, "compare", tmp_path / "nothing", "--baseline", "tiny-cpu")
    assert code == 2
    one_line(err, "nothing", prefix="idrift compare: error:")


def test_cli_report_of_a_folder_without_results(capsys, tmp_path):
    code, err = idrift(capsys, "report", tmp_path)
    assert code == 2
    one_line(err, "results.json", prefix="idrift report: error:")


def test_cli_merge_not_a_store(capsys, tmp_path, stored):
    (tmp_path / "junk").mkdir()
    code, err = idrift(capsys, "merge", stored, tmp_path / "junk", "--out", tmp_path / "merged")
    assert code == 2
    one_line(err, "junk", prefix="idrift merge: error:")


def test_cli_merge_same_store_twice(capsys, tmp_path, stored):
    code, err = idrift(capsys, "merge", stored, stored, "--out", tmp_path / "merged")
    assert code == 2
    one_line(err, "twice", prefix="idrift merge: error:")


def test_cli_merge_refuses_an_image_that_is_not_its_hash(capsys, tmp_path, stored):
    source = tmp_path / "copy"
    shutil.copytree(stored, source)
    [png] = (source / "images").glob("*.png")
    _image(200).save(png)  # a valid PNG of other pixels: the row's hash no longer describes it
    code, err = idrift(capsys, "merge", source, "--out", tmp_path / "merged")
    assert code == 2
    one_line(err, png.name, "do not match", prefix="idrift merge: error:")
    assert not (tmp_path / "merged" / "images" / png.name).exists()


def test_cli_store_garbage_database(capsys, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.sqlite").write_bytes(b"garbage" * 100)
    code, err = idrift(capsys, "merge", bad, "--out", tmp_path / "merged")
    assert code == 2
    one_line(err, "results.sqlite", prefix="idrift merge: error:")
    assert (bad / "results.sqlite").read_bytes() == b"garbage" * 100


# ------------------------------------------------------------------------------------------ weights


def _truncated_torch_file(path: Path) -> Path:
    torch.save({"w": torch.arange(10000, dtype=torch.float32)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_safetensors(path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1000)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    return path


def test_weights_check_truncated_ir_se50_is_corrupt(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = _truncated_torch_file(tmp_path / "arcface_checkpoint.tar")
    path = path.rename(tmp_path / "model_ir_se50.pth")
    code = idrift_main(["weights", "check", "--arcface-ir-se50", str(path)])
    out = capsys.readouterr().out
    assert code == 1 and "Traceback" not in out
    row = next(line for line in out.splitlines() if line.startswith("arcface_ir_se50"))
    assert "CORRUPT" in row and "found" not in row
    problem = next(line for line in out.splitlines() if "corrupt:" in line)
    assert str(path) in problem and "--arcface-ir-se50" in problem


@pytest.mark.parametrize("kind", ["bin", "pth", "onnx", "safetensors", "safetensors-padded"])
def test_verify_file_names_why_a_weight_is_corrupt(tmp_path, kind):
    from idrift.models.verify import verify_file

    if kind in ("bin", "pth"):  # InfiniteYou's image_proj_model.bin, IR-SE50's .pth
        path = _truncated_torch_file(tmp_path / f"model.{kind}")
    elif kind == "onnx":  # a garbage antelopev2 file
        path = tmp_path / "glintr100.onnx"
        path.write_bytes(b"\x00not a protobuf" * 100)
    elif kind == "safetensors":
        path = _truncated_safetensors(tmp_path / "model.safetensors")
    else:
        from safetensors.torch import save_file

        path = tmp_path / "model.safetensors"
        save_file({"w": torch.zeros(10)}, str(path))
        path.write_bytes(path.read_bytes() + b"\x00" * 8)
    why = verify_file(path)
    assert why and "\n" not in why, why


def test_verify_file_accepts_good_files(tmp_path):
    from safetensors.torch import save_file

    from idrift.models.verify import verify_file

    save_file({"w": torch.zeros(10)}, str(tmp_path / "a.safetensors"))
    torch.save({"w": torch.zeros(3)}, tmp_path / "b.bin")
    assert verify_file(tmp_path / "a.safetensors") is None and verify_file(tmp_path / "b.bin") is None
    # the header's declared length larger than the file
    bad = tmp_path / "c.safetensors"
    bad.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    assert "truncated" in verify_file(bad)


# ----------------------------------------------------------------------------------- store on disk


def test_truncated_image_is_not_usable_and_is_named(tmp_path):
    path = _make_store(tmp_path / "s")
    with ResultsStore(path) as store:
        png = store.image_path(_spec().key)
        png.write_bytes(png.read_bytes()[:40])
        assert store.get(_spec()) is not None  # the row is there ...
    with ResultsStore(path) as store:
        assert not store.usable(_spec())  # ... but a resume regenerates it
        with pytest.raises(StoreError) as caught:
            store.get(_spec()).load_image()
    assert str(png) in str(caught.value) and "\n" not in str(caught.value)


def test_replaced_image_is_not_usable(tmp_path):
    path = _make_store(tmp_path / "s")
    with ResultsStore(path) as store:
        _image(99).save(store.image_path(_spec().key))
        assert not store.usable(_spec())
        with pytest.raises(StoreError, match="do not match"):
            store.get(_spec()).load_image()


def test_missing_image_is_not_usable(tmp_path):
    path = _make_store(tmp_path / "s")
    with ResultsStore(path) as store:
        store.image_path(_spec().key).unlink()
        assert not store.usable(_spec())


def test_regenerated_sample_is_usable_again(tmp_path):
    path = _make_store(tmp_path / "s")
    with ResultsStore(path) as store:
        png = store.image_path(_spec().key)
        png.write_bytes(png.read_bytes()[:40])
        store.put_generation(_spec(), _image(10), {"total": 0.1}, {"profile": "tiny"})  # what the runner does
        assert store.usable(_spec()) and store.get(_spec()).load_image().size == (64, 64)


def test_damaged_images_are_listed(tmp_path):
    path = _make_store(tmp_path / "s", seeds=(0, 1, 2))
    with ResultsStore(path) as store:
        store.image_path(_spec(1).key).unlink()
        _image(250).save(store.image_path(_spec(2).key))
        damaged = store.damaged_images()
    assert len(damaged) == 2 and any("missing" in d for d in damaged) and any("do not match" in d for d in damaged)


def test_merge_refuses_a_truncated_image(tmp_path):
    src = _make_store(tmp_path / "src")
    [png] = (src / "images").glob("*.png")
    png.write_bytes(png.read_bytes()[:40])
    with pytest.raises(MergeConflictError, match="cannot be decoded"):
        merge_stores([src], tmp_path / "out")


def test_disk_full_is_one_line_and_loses_nothing(tmp_path):
    path = _make_store(tmp_path / "s")
    before = _snapshot(path)
    store = ResultsStore(path)
    try:
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, as on a full disk
        with pytest.raises(StoreError) as caught:
            for seed in range(1, 200):
                store.put_generation(_spec(seed), _image(seed % 250), {"total": 0.1}, {"profile": "tiny" * 50})
    finally:
        store.close()
    message = str(caught.value)
    assert "disk is full" in message and str(path / "results.sqlite") in message and "\n" not in message
    after = _snapshot(path)
    assert after["rows"][: len(before["rows"])] and set(before["rows"]) <= set(after["rows"])


def test_image_write_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import idrift.store.results as store_results

    path = _make_store(tmp_path / "s")
    before = _snapshot(path)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_results, "atomic_write", full)
    with ResultsStore(path) as store, pytest.raises(StoreError, match="disk is full"):
        store.put_generation(_spec(5), _image(5), {"total": 0.1}, {"profile": "tiny"})
    assert _snapshot(path) == before


def test_read_only_run_folder_is_read(tmp_path, monkeypatch):
    path = _make_store(tmp_path / "s")
    for extra in ("results.sqlite-wal", "results.sqlite-shm"):
        (path / extra).unlink(missing_ok=True)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == path and mode == os.W_OK
                        else real_access(p, mode, **kw))
    store = ResultsStore(path, readonly=True)  # a healthy database, not "not a usable SQLite database"
    try:
        assert [r.spec_key for r in store.samples()] == [_spec().key]
    finally:
        store.close()


def test_unwritable_cache_is_one_line(tmp_path, monkeypatch):
    from idrift.errors import IdriftError
    from idrift.session import BenchmarkSession, SessionOptions

    (tmp_path / "file").write_text("x")
    session = BenchmarkSession(SessionOptions(cache_dir=str(tmp_path / "file" / "cache")))
    with pytest.raises(IdriftError, match="cache folder") as caught:
        session.cache_dir
    assert "\n" not in str(caught.value)


def test_builtin_identities_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    from idrift.data.identities import user_cache_dir
    from idrift.session import BenchmarkSession, SessionOptions

    monkeypatch.delenv("IDRIFT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    dirs = []
    for cwd in (tmp_path / "a", tmp_path / "b"):
        cwd.mkdir()
        monkeypatch.chdir(cwd)
        dirs.append(BenchmarkSession(SessionOptions()).cache_dir)
    assert dirs[0] == dirs[1] == user_cache_dir() == tmp_path / "xdg" / "idrift"


# ------------------------------------------------------------------------------------ two processes


def test_a_lease_keeps_a_second_process_off_a_sample(tmp_path):
    path = _make_store(tmp_path / "s")
    a, b = ResultsStore(path), ResultsStore(path)
    try:
        key = _spec(7).key
        assert a.take_leases([key]) == {key}
        assert b.take_leases([key]) == set()  # b skips it (and waits for it: Runner.ensure)
        a.release_leases([key])
        assert b.take_leases([key]) == {key}
        b.close()  # closing frees b's leases
        assert a.take_leases([key]) == {key}
    finally:
        a.close()
        b.close()


def test_an_expired_or_orphaned_lease_is_taken_over(tmp_path):
    path = _make_store(tmp_path / "s")
    a, b = ResultsStore(path), ResultsStore(path)
    try:
        assert a.take_leases(["k1"], ttl=-1) == {"k1"}  # already expired
        assert b.take_leases(["k1"]) == {"k1"}
        import socket

        dead = f"{socket.gethostname()}:{2**22 + 12345}:dead"  # a pid no process of this host has
        a._write(lambda c: c.execute("INSERT OR REPLACE INTO leases VALUES ('k2', ?, ?)", (dead, 1e12)))
        assert b.take_leases(["k2"]) == {"k2"}  # a SIGKILLed run's resume does not wait for its lease
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------------------------- run finishing


@pytest.mark.slow
def test_pytest_run_is_marked_finished_in_the_store(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("IDRIFT_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_open="""
def test_open(idrift_session):
    assert idrift_session.store.run_id
""")
    store = tmp_path / "store"
    result = pytester.runpytest_inprocess("-p", "idrift.pytest_plugin", "-p", "no:cacheprovider",
                                          "--idrift-store", str(store))
    assert result.ret == 0, result.outlines
    with ResultsStore(store, readonly=True) as opened:
        [run] = opened.runs()
    assert run["finished"] is not None


@pytest.mark.slow
def test_resume_from_another_directory_regenerates_a_truncated_image(capsys, tmp_path, monkeypatch):
    """End to end: `idrift run`, truncate one stored PNG; the same `idrift run` from another working directory
    resumes (built-in caches do not depend on it) and regenerates it; the runs are marked finished."""
    from idrift.data.identities import builtin_identity_set, load_manifest, write_manifest

    monkeypatch.setenv("IDRIFT_CACHE", str(tmp_path / "cache"))
    full = load_manifest(builtin_identity_set())
    one = write_manifest(full.path.parent / "one.json", full.entries[:1],
                         created_with={"tool": "tests/test_bad_inputs.py"})
    args = ["run", "--profile", "tiny", "--claims", "figure5_guidance", "--out", str(tmp_path / "run"),
            "--identities", str(one)]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert idrift_main(args) == 0
    capsys.readouterr()
    images = sorted((tmp_path / "run" / "store" / "images").glob("*.png"))
    good = images[0].read_bytes()
    images[0].write_bytes(good[:60])

    code, err = idrift(capsys, "report", tmp_path / "run", "--out", tmp_path / "report")
    assert code == 2
    one_line(err, str(images[0]), "cannot be decoded", prefix="idrift report: error:")

    monkeypatch.chdir(tmp_path / "b")
    assert idrift_main(args) == 0, capsys.readouterr().err
    with ResultsStore(tmp_path / "run" / "store", readonly=True) as store:
        record = store.get(images[0].stem)
        assert record is not None and record.load_image().size == (64, 64)  # decodes to its stored hash
        assert all(run["finished"] for run in store.runs())
