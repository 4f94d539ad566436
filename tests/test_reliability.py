"""The bad-input catalogue: every way a user's input can be wrong, through the entry points users hit.

One table (`CASES`). Each case builds a real bad input in tmp_path and runs the real code path a user
runs - `BenchmarkSession` (what `pytest benchmarks` and `idrift run` share), `Runner.ensure`, the
`idrift` dispatcher, `get_claims` - never a mock. A case expects either

- an error of a given type whose message NAMES THE INPUT (the file, folder, option or name at
  fault) and says what is wrong, or
- no error, and then something RECORDED instead: a per-sample failure in the store (NaN/inf), a
  failed face detection, a converted image that still gives the same face;

and, where there is finished work around (the results store), that none of it is lost (`after`).

The per-module unit tests (test_image_io, test_faces_*, test_real_loading, test_baselines, test_store)
check each function's own errors; these cases check that those errors reach the user intact through
the layers above them, and the per-sample fault handling of the runner, which no unit test covers.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from idrift.baselines.io import BaselineError
from idrift.errors import (
    IdriftError,
    ImageError,
    NoFaceError,
    WeightsError,
)
from idrift.store import StoreError

REPO = Path(__file__).resolve().parents[1]
KPS_TOLERANCE_PX = 3.0  # a converted reference (gray, RGBA, 16-bit) must give the same face within this


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def weights_layout(tmp_path_factory):
    """The tiny models saved in the exact on-disk layout of the real weights (~12 s, once)."""
    from idrift.models.layout import save_tiny_as_real_layout

    return save_tiny_as_real_layout(tmp_path_factory.mktemp("real_layout"))


@pytest.fixture(scope="module")
def tiny_session(tmp_path_factory):
    """A tiny-profile BenchmarkSession with its own store, holding one finished, measured sample
    (the 'sentinel') that no fault may touch."""
    from idrift.claims import CLAIMS_BY_ID
    from idrift.session import BenchmarkSession, SessionOptions

    root = tmp_path_factory.mktemp("tiny_session")
    session = BenchmarkSession(SessionOptions(profile="tiny", store=str(root / "store"), cache_dir=str(root / "cache")))
    sentinel = session.specs(CLAIMS_BY_ID["figure5_guidance"])[0]
    session.runner.ensure([sentinel], ("id_sim",), progress=False)
    session.sentinel = sentinel  # type: ignore[attr-defined]
    session.sentinel_snapshot = _snapshot(session.store, sentinel)  # type: ignore[attr-defined]
    return session


@pytest.fixture(scope="module")
def good_reference(tmp_path_factory, dlib_backend):
    """The built-in astronaut crop: a valid reference (one face). Returns (rgb array, kps)."""
    from idrift.data.identities import builtin_identity_set, load_manifest
    from idrift.faces.image_io import load_image
    from idrift.faces.select import reference_face

    manifest = load_manifest(builtin_identity_set(tmp_path_factory.mktemp("identities")))
    path = manifest.image_file(manifest.entry("astronaut"))
    image = load_image(path)
    face = reference_face(dlib_backend.detect(image), source=str(path))
    return image, np.asarray(face.kps, dtype=np.float32)


pytestmark = pytest.mark.usefixtures("no_user_weight_settings")


class Env:
    """What a case may use; the expensive parts are built on first use and shared by the module."""

    def __init__(self, request, tmp_path: Path):
        self.request = request
        self.tmp = tmp_path

    def __getattr__(self, name):  # weights_layout, tiny_session, good_reference, dlib_backend, capsys
        return self.request.getfixturevalue(name)


# ----------------------------------------------------------------------------------------- helpers


def _snapshot(store, spec) -> tuple:
    record = store.get(spec)
    assert record is not None and record.ok
    return (record.status, record.image_sha256, record.run_id,
            {name: entry["values"] for name, entry in record.metrics.items()})


def sentinel_kept(env: Env) -> None:
    """Finished work is not lost: the sentinel sample is untouched, the store file is sound, and
    every 'ok' row still has its image."""
    session = env.tiny_session
    store = session.store
    assert _snapshot(store, session.sentinel) == session.sentinel_snapshot
    assert store.integrity_check() == "ok"
    for record in store.samples():
        assert record.image_path is not None and record.image_path.is_file()


# --- real-layout weights ---------------------------------------------------------------------------


def _real_session(env: Env, **weights):
    from idrift.session import BenchmarkSession, SessionOptions

    layout = env.weights_layout
    given = {"flux_dev": layout.flux_dev, "flux_schnell": layout.flux_schnell, "infiniteyou": layout.infiniteyou,
             "arcface_ir_se50": layout.arcface_ir_se50}
    given.update({k: str(v) for k, v in weights.items()})
    return BenchmarkSession(SessionOptions(profile="real", weights=given, cache_dir=str(env.tmp / "cache")))


def _linked_copy(src: str | Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    """A FLUX folder whose sub-folders are symlinks to `src`'s (cheap), leaving out `skip`."""
    dst.mkdir(parents=True)
    for child in Path(src).iterdir():
        if child.name not in skip:
            (dst / child.name).symlink_to(child)
    return dst


def weights_missing(env: Env):
    missing = env.tmp / "no-such-folder" / "FLUX.1-schnell"
    return str(missing), lambda: _real_session(env, flux_schnell=missing).bundle


def weights_partial_download(env: Env):
    # An interrupted download: the shared components never arrived.
    partial = _linked_copy(env.weights_layout.flux_dev, env.tmp / "FLUX.1-dev", skip=("vae", "text_encoder_2"))
    return str(partial), lambda: _real_session(env, flux_dev=partial).bundle


def weights_missing_shard(env: Env):
    dev = _linked_copy(env.weights_layout.flux_dev, env.tmp / "FLUX.1-dev", skip=("transformer",))
    shutil.copytree(Path(env.weights_layout.flux_dev) / "transformer", dev / "transformer")
    sorted((dev / "transformer").glob("*-of-*.safetensors"))[1].unlink()
    return str(dev), lambda: _real_session(env, flux_dev=dev).bundle


def weights_empty_folder(env: Env):
    empty = env.tmp / "FLUX.1-dev"
    empty.mkdir()
    return str(empty), lambda: _real_session(env, flux_dev=empty).bundle


def weights_wrong_layout(env: Env):
    # A common slip: pointing at the transformer/ sub-folder instead of the pipeline folder.
    inner = Path(env.weights_layout.flux_dev) / "transformer"
    return str(inner), lambda: _real_session(env, flux_dev=inner).bundle


def weights_corrupt_header(env: Env):
    dev = _linked_copy(env.weights_layout.flux_dev, env.tmp / "FLUX.1-dev", skip=("transformer",))
    shutil.copytree(Path(env.weights_layout.flux_dev) / "transformer", dev / "transformer")
    shard = min((dev / "transformer").glob("*-of-*.safetensors"))
    data = bytearray(shard.read_bytes())
    data[:8] = struct.pack("<Q", 2**60)  # header length far past the end of the file
    shard.write_bytes(bytes(data))
    return str(shard), lambda: _real_session(env, flux_dev=dev).bundle


# --- reference photos, through an identity manifest into BenchmarkSession.identities ----------------


def _identities_session(env: Env, image_path: Path, *, keep_file: bool = True):
    """A session whose identity set is the one photo `image_path` (manifest with its real sha256)."""
    from idrift.data.identities import IdentityEntry, sha256_file, write_manifest
    from idrift.session import BenchmarkSession, SessionOptions

    manifest = write_manifest(
        image_path.parent / "manifest.json",
        [IdentityEntry(identity_id="person", image_path=image_path.name, sha256=sha256_file(image_path))],
        created_with={"tool": "tests/test_reliability.py"},
    )
    if not keep_file:
        image_path.unlink()
    session = BenchmarkSession(SessionOptions(profile="tiny", identities=str(manifest),
                                              cache_dir=str(env.tmp / "cache")))
    session.__dict__["face_backend"] = env.dlib_backend  # the session's own dlib backend, loaded once per test run
    return session


def _photo(env: Env, name: str, data: bytes) -> Path:
    folder = env.tmp / "photos"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def _png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height and holds no pixel data: a decompression bomb's header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


def _identities_case(name: str, make: Callable[[Env], bytes], keep_file: bool = True):
    def setup(env: Env):
        path = _photo(env, name, make(env))
        session = _identities_session(env, path, keep_file=keep_file)
        return str(path.resolve()), lambda: session.identities

    return setup


def _good_png(env: Env) -> bytes:
    return _png(Image.fromarray(env.good_reference[0]))


def _grayscale(env: Env) -> bytes:
    return _png(Image.fromarray(env.good_reference[0]).convert("L"))


def _rgba(env: Env) -> bytes:
    rgb = env.good_reference[0]
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:12, :] = alpha[-12:, :] = alpha[:, :12] = alpha[:, -12:] = 0  # a transparent frame
    return _png(Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA"))


def _gray16(env: Env) -> bytes:
    gray8 = np.asarray(Image.fromarray(env.good_reference[0]).convert("L"), dtype=np.uint16)
    return _png(Image.fromarray(gray8 * 257))  # full 16-bit range: 255 -> 65535


def _truncated(env: Env) -> bytes:
    data = _good_png(env)
    return data[: len(data) // 2]


def _full_astronaut(env: Env) -> bytes:
    from skimage import data

    return _png(Image.fromarray(data.astronaut()))


def _t1(env: Env) -> bytes:
    import insightface

    return (Path(insightface.__file__).parent / "data" / "images" / "t1.jpg").read_bytes()


def _accepted_same_face(expected_pixels: Callable[[np.ndarray], np.ndarray] | None = None):
    """The converted reference is accepted as RGB uint8 and gives the same face as the RGB original."""

    def check(identities, env: Env) -> None:
        rgb, kps = env.good_reference
        [identity] = identities
        assert identity.id == "person"
        assert identity.image.dtype == np.uint8 and identity.image.shape == rgb.shape
        assert identity.image.flags["C_CONTIGUOUS"]
        assert np.abs(identity.kps - kps).max() <= KPS_TOLERANCE_PX, (identity.kps, kps)
        if expected_pixels is not None:
            np.testing.assert_array_equal(identity.image, expected_pixels(rgb))

    return check


def _largest_face_used(n_faces: int):
    """A reference with several faces is accepted, as InfiniteYou accepts it: its largest face, the count kept."""

    def check(identities, env: Env) -> None:
        from idrift.faces import largest_face

        [identity] = identities
        assert identity.n_faces == n_faces
        largest = largest_face(env.dlib_backend.detect(identity.image))
        np.testing.assert_array_equal(identity.kps, np.asarray(largest.kps, np.float32))

    return check


def _gray_replicated(rgb: np.ndarray) -> np.ndarray:
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    return np.repeat(gray[:, :, None], 3, axis=2)


def _framed_in_white(rgb: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    out[:12, :] = out[-12:, :] = out[:, :12] = out[:, -12:] = 255
    return out


# --- NaN / inf inside generation: Runner.ensure over several specs, one poisoned -------------------


def _specs(env: Env, seed: int):
    """Three specs: two schnell (clean) and, in the middle, one dev (the backbone a hook poisons)."""
    from idrift.claims import CLAIMS_BY_ID

    base = env.tiny_session.specs(CLAIMS_BY_ID["figure5_guidance"])[0].replace(seed=seed)
    return [base, base.replace(backbone="dev", guidance=3.5), base.replace(seed=seed + 1)]


def _poisoned_run(env: Env, specs, module, poison: Callable, expect_failed: list[int]):
    """Run ensure with `poison` hooked on `module`; returns (records, specs, expect_failed)."""
    handle = module.register_forward_hook(poison)
    try:
        records = env.tiny_session.runner.ensure(specs, ("id_sim",), progress=False)
    finally:
        handle.remove()
    return records, specs, expect_failed


def _nan_backbone(module, args, out):
    return (out[0] * float("nan"),)


def _inf_backbone(module, args, out):
    poisoned = out[0].clone()
    poisoned.view(-1)[-1] = float("inf")  # one value of the velocity is enough
    return (poisoned,)


def nonfinite_backbone(poison: Callable, seed: int):
    def setup(env: Env):
        specs = _specs(env, seed)
        dev = env.tiny_session.bundle.backbone("dev")
        return specs[1].key, lambda: _poisoned_run(env, specs, dev, poison, expect_failed=[1])

    return setup


def nonfinite_vae_decode(env: Env):
    specs = _specs(env, 120)
    specs = [specs[0], specs[2], specs[0].replace(seed=122)]  # three schnell specs; the 2nd decode is poisoned
    calls = []

    def poison(module, args, out):
        calls.append(1)
        return out * float("nan") if len(calls) == 2 else out

    decoder = env.tiny_session.bundle.vae.decoder
    return specs[1].key, lambda: _poisoned_run(env, specs, decoder, poison, expect_failed=[1])


def nonfinite_trajectory(env: Env):
    """A poisoned trajectory run fails every step it serves, and only those."""
    from idrift.claims import DRIFT_STEPS

    clean = _specs(env, 130)[0]
    traj = clean.replace(backbone="dev", guidance=3.5, mode="trajectory", steps=4, trajectory_of=DRIFT_STEPS[-1])
    specs = [traj, clean, traj.replace(steps=DRIFT_STEPS[-1])]
    dev = env.tiny_session.bundle.backbone("dev")

    def run():
        result = _poisoned_run(env, specs, dev, _nan_backbone, expect_failed=[0, 2])
        store = env.tiny_session.store
        # Every standard step of that trajectory is recorded failed (none will be re-run in vain).
        for step in DRIFT_STEPS:
            assert store.get(traj.replace(steps=step)).status == "failed", step
        return result

    return traj.key, run


def recorded_failures(result, env: Env) -> None:
    """The poisoned sample is stored as failed with a message naming it; the others are ok; ensure
    returned every record; a rerun returns the same without generating (the failure is stored)."""
    records, specs, expect_failed = result
    assert len(records) == len(specs)
    for i, (record, spec) in enumerate(zip(records, specs)):
        assert record["spec"] == spec.as_dict()
        if i in expect_failed:
            assert record["status"] == "failed", record
            # The message names the pipeline run that failed: the sample itself, or for a trajectory
            # sample the trajectory_of-step run that serves it (its key differs from the sample's).
            run_key = (spec.replace(mode="budget", steps=spec.trajectory_of, trajectory_of=0).key
                       if spec.mode == "trajectory" else spec.key)
            assert "NaN/inf" in record["error"] and run_key in record["error"], record["error"]
            assert env.tiny_session.store.get(spec).image_path is None  # no image that looks like a result
        else:
            assert record["status"] == "ok" and record["error"] is None, record
            assert record["metrics"]["pixels"]["sha256"]
    again = env.tiny_session.runner.ensure(specs, ("id_sim",), progress=False)
    assert again == records


def generated_no_face(env: Env):
    spec = _specs(env, 140)[0]
    return spec.key, lambda: (spec, env.tiny_session.runner.ensure([spec], ("id_sim",), progress=False))


def failed_detection_recorded(result, env: Env) -> None:
    """Tiny random weights draw no face: the sample is kept (its image is fine) and its ID_sim row
    records the failed detection, which the 'zero' aggregation counts as 0."""
    spec, [record] = result
    assert record["status"] == "ok"
    id_sim = record["metrics"]["id_sim"]
    assert id_sim["detected"] is False and id_sim["id_sim"] is None and id_sim["n_faces"] == 0, id_sim
    assert id_sim["reference"] == spec.identity
    stored = env.tiny_session.store.get(spec)
    assert stored.metrics["id_sim"]["values"] == id_sim
    assert stored.metrics["id_sim"]["version"].startswith("id_sim/dlib")


# --- baselines ------------------------------------------------------------------------------------


def _baseline_case(mutate: Callable[[dict], object], name: str = "baseline.json"):
    def setup(env: Env):
        from idrift.session import BenchmarkSession, SessionOptions

        doc = json.loads((REPO / "baselines" / "tiny-cpu.json").read_text())
        text = mutate(doc)
        path = env.tmp / name
        path.write_text(text if isinstance(text, str) else json.dumps(doc))
        session = BenchmarkSession(SessionOptions(profile="tiny", baseline=str(path), cache_dir=str(env.tmp / "cache")))
        return str(path), lambda: session.baseline

    return setup


def _truncate_json(doc):
    return json.dumps(doc, indent=1)[:300]


def _old_schema(doc):
    doc["schema_version"] = 0


def _unversioned(doc):
    del doc["schema_version"]  # written before baselines carried a schema version


def _negative_tolerance(doc):
    doc["claims"]["figure5_guidance"]["metrics"]["samples_varying_with_guidance"]["tolerance"] = -0.5


def baseline_unknown_name(env: Env):
    from idrift.session import BenchmarkSession, SessionOptions

    session = BenchmarkSession(SessionOptions(profile="tiny", baseline="tiny-gpu", cache_dir=str(env.tmp / "cache")))
    return "'tiny-gpu'", lambda: session.baseline


# --- claims ---------------------------------------------------------------------------------------


def _get_claims(names: str, shown: str):
    def setup(env: Env):
        from idrift.claims import get_claims

        return shown, lambda: get_claims(names)

    return setup


def one_claim_each(result, env: Env) -> None:
    assert [claim.id for claim in result] == ["figure5_guidance"]


# --- an output folder that cannot be written -----------------------------------------------------


def unwritable_location(tmp: Path) -> tuple[Path, bool]:
    """(a folder path that cannot be written, whether it is an existing read-only folder).

    chmod 0o500 makes a folder read-only, except for root, whom modes do not stop (tests often run as
    root in containers). Then the location is a path under a regular FILE, which nobody can create."""
    folder = tmp / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        (folder / ".probe").write_text("x")
    except PermissionError:
        return folder, True
    (folder / ".probe").unlink()
    folder.chmod(0o700)
    blocker = tmp / "afile"
    blocker.write_text("a regular file, not a folder")
    return blocker / "store", False


def _plain_spec():
    from idrift.config import RunSpec

    return RunSpec(backbone="schnell", steps=4, guidance=0.0, alpha=1.0, prompt_id="portrait", prompt="a portrait",
                   identity="id0", seed=0, width=64, height=64, dtype="float32", profile="tiny")


def store_unwritable(env: Env):
    from idrift.session import BenchmarkSession, SessionOptions
    from idrift.store import ResultsStore

    location, readonly = unwritable_location(env.tmp)
    if readonly:  # an existing store that became read-only: its finished samples must survive the refusal
        location.chmod(0o700)
        spec = _plain_spec()
        with ResultsStore(location) as store:
            store.put_generation(spec, Image.new("RGB", (16, 16), (10, 20, 30)), {"backbone": 0.1}, {})
        location.chmod(0o500)
        (location / "images").chmod(0o500)
    session = BenchmarkSession(SessionOptions(profile="tiny", store=str(location), cache_dir=str(env.tmp / "cache")))
    env.request.addfinalizer(lambda: [p.chmod(0o700) for p in (location, location / "images") if p.is_dir()])
    return str(location), lambda: session.store


def store_kept_when_readonly(env: Env) -> None:
    from idrift.store import ResultsStore

    location = env.tmp / "readonly"
    if not (location / "results.sqlite").is_file():
        return  # root: the location is under a regular file; there is nothing there to keep
    for folder in (location, location / "images"):  # the user makes it writable again (SQLite's WAL
        folder.chmod(0o700)                          # needs a writable folder even to read)
    with ResultsStore(location, readonly=True) as store:
        [record] = store.samples()
        assert store.integrity_check() == "ok" and record.image_path.is_file()


def cli_run_out_unwritable(env: Env):
    from idrift import cli

    location, _ = unwritable_location(env.tmp)
    out = location / "run"
    env.request.addfinalizer(lambda: env.tmp.joinpath("readonly").chmod(0o700))
    env.capsys.readouterr()
    return str(out), lambda: (out, cli.main(["run", "--profile", "tiny", "--claims", "figure5_guidance",
                                             "--out", str(out)]))


def one_line_cli_error(result, env: Env) -> None:
    out, code = result
    err = env.capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("idrift run: error:") and str(out) in lines[0], err


# ----------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # which family of bad input
    setup: Callable[[Env], tuple[str, Callable[[], object]]]  # -> (how messages must name the input, action)
    error: type[BaseException] | None = None  # the error the user gets ...
    fragments: tuple[str, ...] = ()  # ... and what else its message must say
    check: Callable[[object, Env], None] | None = None  # no error: what is recorded instead
    after: Callable[[Env], None] | None = None  # nothing already done is lost


WEIGHTS_ADVICE = ("fix them all, then rerun",)

CASES: list[Case] = [
    # Weights of the real profile (the tiny models saved in the real layout).
    Case("weights_missing_folder", "weights", weights_missing, WeightsError,
         ("flux_schnell", "does not exist", "--idrift-flux-schnell", "IDRIFT_FLUX_SCHNELL", *WEIGHTS_ADVICE)),
    Case("weights_partial_download", "weights", weights_partial_download, WeightsError,
         ("2 problems", "missing sub-folder vae/", "missing sub-folder text_encoder_2/", "--idrift-flux-dev")),
    Case("weights_missing_shard", "weights", weights_missing_shard, WeightsError,
         ("transformer", "missing 1 of the 4 shards", "--idrift-flux-dev")),
    Case("weights_empty_folder", "weights", weights_empty_folder, WeightsError, ("is empty", "--idrift-flux-dev")),
    Case("weights_wrong_layout", "weights", weights_wrong_layout, WeightsError,
         ("wrong layout", "transformer/ sub-folder", "point at its parent", "--idrift-flux-dev")),
    Case("weights_corrupt_safetensors_header", "weights", weights_corrupt_header, WeightsError,
         ("corrupt safetensors header", "--idrift-flux-dev")),
    # Reference photos, as a user's identity manifest lists them.
    Case("image_corrupt", "image", _identities_case("corrupt.png", lambda env: os.urandom(4096)), ImageError,
         ("not a readable image", "PNG or JPEG")),
    Case("image_truncated", "image", _identities_case("truncated.png", _truncated), ImageError,
         ("corrupt or truncated",)),
    Case("image_empty", "image", _identities_case("empty.jpg", lambda env: b""), ImageError, ("the file is empty",)),
    Case("image_tiny", "image", _identities_case("tiny.png", lambda env: _png(Image.new("RGB", (16, 16)))),
         ImageError, ("16x16 px is too small",)),
    Case("image_huge", "image", _identities_case("huge.png", lambda env: _png_header_only(12000, 6000)),
         ImageError, ("12000x6000 px is too large", "8192 px a side", "downscale it")),
    Case("image_missing_after_manifest", "image", _identities_case("gone.png", _good_png, keep_file=False),
         IdriftError, ("not found at", "'person'", "manifest.json")),
    Case("image_grayscale", "image", _identities_case("gray.png", _grayscale),
         check=_accepted_same_face(_gray_replicated)),
    Case("image_rgba", "image", _identities_case("rgba.png", _rgba), check=_accepted_same_face(_framed_in_white)),
    Case("image_16bit", "image", _identities_case("gray16.png", _gray16), check=_accepted_same_face(_gray_replicated)),
    # Faces (dlib backend, real photographs).
    Case("reference_several_faces_astronaut", "face", _identities_case("astronaut.png", _full_astronaut),
         check=_largest_face_used(2)),
    Case("reference_several_faces_t1", "face", _identities_case("t1.jpg", _t1), check=_largest_face_used(6)),
    Case("reference_no_face_blank", "face",
         _identities_case("blank.png", lambda env: _png(Image.new("RGB", (256, 256), (128, 128, 128)))),
         NoFaceError, ("no face found",)),
    Case("generated_image_no_face", "face", generated_no_face, check=failed_detection_recorded, after=sentinel_kept),
    # Non-finite values inside generation: recorded per sample, the run goes on.
    Case("nan_in_latents", "nonfinite", nonfinite_backbone(_nan_backbone, 100), check=recorded_failures,
         after=sentinel_kept),
    Case("inf_in_latents", "nonfinite", nonfinite_backbone(_inf_backbone, 110), check=recorded_failures,
         after=sentinel_kept),
    Case("nan_in_vae_decode", "nonfinite", nonfinite_vae_decode, check=recorded_failures, after=sentinel_kept),
    Case("nan_in_trajectory_run", "nonfinite", nonfinite_trajectory, check=recorded_failures, after=sentinel_kept),
    # Baseline files.
    Case("baseline_malformed_json", "baseline", _baseline_case(_truncate_json), BaselineError,
         ("invalid JSON at line", "re-bless")),
    Case("baseline_old_schema", "baseline", _baseline_case(_old_schema), BaselineError,
         ("older idrift (schema 0", "re-bless")),
    Case("baseline_unversioned", "baseline", _baseline_case(_unversioned), BaselineError,
         ("'schema_version' is a required property",)),
    Case("baseline_negative_tolerance", "baseline", _baseline_case(_negative_tolerance), BaselineError,
         ("claims.figure5_guidance.metrics.samples_varying_with_guidance.tolerance", "less than the minimum of 0")),
    Case("baseline_unknown_name", "baseline", baseline_unknown_name, BaselineError,
         ("available:", "tiny-cpu", "idrift bless")),
    # Claim names.
    Case("claim_unknown", "claims", _get_claims("figure9", "'figure9'"), IdriftError,
         ("known claims:", "figure5_guidance", "families:")),
    Case("claim_typo_among_known", "claims", _get_claims("figure5_guidance,figur4_alpha", "'figur4_alpha'"),
         IdriftError, ("known claims:",)),
    Case("claim_named_twice", "claims", _get_claims("guidance, figure5_guidance", "figure5_guidance"),
         check=one_claim_each),
    # An output folder that cannot be written.
    Case("store_unwritable", "output", store_unwritable, StoreError, ("is not writable", "choose a folder"),
         after=store_kept_when_readonly),
    Case("cli_run_out_unwritable", "output", cli_run_out_unwritable, check=one_line_cli_error),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, request, tmp_path):
    env = Env(request, tmp_path)
    shown, action = case.setup(env)
    if case.error is not None:
        with pytest.raises(case.error) as info:
            action()
        message = str(info.value)
        assert shown in message, f"the message does not name the input {shown}: {message}"
        for fragment in case.fragments:
            assert fragment in message, f"{fragment!r} missing from: {message}"
        assert "Traceback" not in message
    else:
        assert case.check is not None, "a case must expect an error or check what is recorded"
        case.check(action(), env)
    if case.after is not None:
        case.after(env)


def test_catalogue_size():
    kinds = {case.kind for case in CASES}
    print(f"\nbad-input catalogue: {len(CASES)} cases over {len(kinds)} kinds ({', '.join(sorted(kinds))})")
    assert len(CASES) >= 20
    assert kinds == {"weights", "image", "face", "nonfinite", "baseline", "claims", "output"}
    assert len({case.id for case in CASES}) == len(CASES)
    assert all((case.error is None) != (case.check is None) for case in CASES)
