"""The `real` profile loader and the layout check, on the tiny models saved in the real layout.

`save_tiny_as_real_layout` writes exactly the folders users have (two diffusers FLUX folders, the
InfiniteYou tree, the ArcFace file), so these tests run the very code a GPU runner runs on real
weights: the loader, the layout check, the fingerprints and `idrift weights check`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from idrift.errors import WeightsError
from idrift.models import tiny
from idrift.models.backbones import FLOW_MATCH_DEV, FLOW_MATCH_SCHNELL
from idrift.models.fingerprint import fingerprint_file, fingerprint_folder, read_safetensors_header
from idrift.models.layout import save_tiny_as_real_layout
from idrift.models.paths import WEIGHT_OPTIONS, WeightPaths, resolve_weight_paths
from idrift.models.real import REAL_RESAMPLER_CONFIG, load_real_bundle, resampler_config
from idrift.models.weights_check import check_weights

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def layout(tmp_path_factory) -> WeightPaths:
    root = tmp_path_factory.mktemp("real_layout")
    return save_tiny_as_real_layout(root, seed=0, variants=("aes_stage2", "sim_stage1"))


@pytest.fixture(scope="session")
def bundle(layout):
    return load_real_bundle(layout, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def reference():
    parts = tiny.build_components(0)
    parts["dev"] = tiny.build_backbone("dev", 0)
    parts["schnell"] = tiny.build_backbone("schnell", 0)
    return parts


pytestmark = pytest.mark.usefixtures("no_user_weight_settings")


def _with(paths: WeightPaths, **changes) -> WeightPaths:
    values = {k: getattr(paths, k) for k in ("flux_dev", "flux_schnell", "infiniteyou", "infu_variant",
                                             "antelopev2", "arcface_ir_se50", "vgg16")}
    values.update({k: (str(v) if isinstance(v, Path) else v) for k, v in changes.items()})
    return WeightPaths(**values)


def _copy(src: str | Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _bitwise_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        x, y = sa[key].detach().cpu(), sb[key].detach().cpu()
        assert x.dtype == y.dtype and x.shape == y.shape, key
        as_bytes = [t.reshape(-1).contiguous().view(torch.uint8) for t in (x, y)]
        assert torch.equal(*as_bytes), key


def _load_error(paths: WeightPaths, **kwargs) -> str:
    with pytest.raises(WeightsError) as info:
        load_real_bundle(paths, device="cpu", dtype=torch.float32, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------------------------------
# Loading


def test_every_component_equals_the_tiny_one_bitwise(bundle, reference):
    assert bundle.profile == "real" and bundle.dtype == torch.float32 and bundle.device.type == "cpu"
    for name in ("infusenet", "image_proj", "id_encoder", "vae", "text_encoder", "text_encoder_2"):
        module = getattr(bundle, name)
        _bitwise_equal(module, reference[name])
        assert not module.training, f"{name} is in training mode"
    for name in ("dev", "schnell"):
        backbone = bundle.backbone(name)
        _bitwise_equal(backbone, reference[name])
        assert not backbone.training
    assert bundle.backbone("dev").config.guidance_embeds and not bundle.backbone("schnell").config.guidance_embeds


def test_tokenizers_schedulers_and_sequence_length(bundle, reference):
    prompt = "a photo of a woman wearing glasses on the beach"
    assert bundle.tokenizer(prompt).input_ids == reference["tokenizer"](prompt).input_ids
    assert bundle.tokenizer_2(prompt).input_ids == reference["tokenizer_2"](prompt).input_ids
    for name, expected in (("dev", FLOW_MATCH_DEV), ("schnell", FLOW_MATCH_SCHNELL)):
        config = bundle.scheduler_configs[name]
        assert {k: config[k] for k in expected} == expected
        assert not any(k.startswith("_") for k in config)
    # 512 for the real T5 tokenizer; capped by the tiny tokenizer's own 32.
    assert bundle.max_sequence_length == tiny.T5_MAX_LENGTH


def test_resampler_uses_real_hyper_parameters_unless_a_config_says_otherwise(layout, tmp_path):
    assert resampler_config(tmp_path) == REAL_RESAMPLER_CONFIG  # no image_proj_config.json: a real folder
    variant = Path(layout.infiniteyou) / "infu_flux_v1.0" / "aes_stage2"
    assert resampler_config(variant) == dict(REAL_RESAMPLER_CONFIG, **tiny.RESAMPLER_CONFIG)


def test_fingerprints_are_stable_across_loads(layout, bundle):
    again = load_real_bundle(layout, device="cpu", dtype=torch.float32)
    assert set(bundle.fingerprints) == {"flux_dev", "flux_schnell", "infusenet", "image_proj", "vae", "text_encoders",
                                        "arcface_ir_se50"}
    assert again.fingerprints == bundle.fingerprints
    assert again.fingerprint == bundle.fingerprint
    assert [s.fingerprint for s in check_weights(layout)] == [s.fingerprint for s in check_weights(layout)]


def test_fingerprint_changes_when_a_weight_changes(layout, bundle, tmp_path):
    from safetensors.torch import load_file, save_file

    root = _copy(layout.infiniteyou, tmp_path / "InfiniteYou")
    infusenet = root / "infu_flux_v1.0" / "aes_stage2" / "InfuseNetModel"
    shard = sorted(infusenet.glob("*.safetensors"))[0]
    tensors = load_file(shard)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1.0  # one value; the header (names, dtypes, shapes, offsets) is unchanged
    save_file(tensors, shard, metadata={"format": "pt"})
    changed = load_real_bundle(_with(layout, infiniteyou=root), device="cpu", dtype=torch.float32)
    assert changed.fingerprints["infusenet"] != bundle.fingerprints["infusenet"]
    assert {k: v for k, v in changed.fingerprints.items() if k != "infusenet"} == \
        {k: v for k, v in bundle.fingerprints.items() if k != "infusenet"}
    assert changed.fingerprint != bundle.fingerprint

    proj = root / "infu_flux_v1.0" / "aes_stage2" / "image_proj_model.bin"
    before = fingerprint_file(proj)
    state = torch.load(proj, weights_only=True)
    state["image_proj"]["proj_out.bias"] = state["image_proj"]["proj_out.bias"] + 1
    torch.save(state, proj)
    assert fingerprint_file(proj) != before


def test_variant_and_schnell_only_bundle(layout, bundle, reference):
    sim = load_real_bundle(_with(layout, infu_variant="sim_stage1"), device="cpu", dtype=torch.float32,
                           backbones=("schnell",))
    assert set(sim.backbone_factories) == {"schnell"}
    with pytest.raises(KeyError, match="dev"):
        sim.backbone("dev")
    # Another InfuseNet: different weights and fingerprint (its safetensors headers are identical).
    assert sim.fingerprints["infusenet"] != bundle.fingerprints["infusenet"]
    assert not torch.equal(sim.infusenet.controlnet_x_embedder.weight, bundle.infusenet.controlnet_x_embedder.weight)
    # Shared components now come from the schnell folder: the same files, so the same fingerprints.
    assert "flux_dev" not in sim.fingerprints
    assert sim.fingerprints["text_encoders"] == bundle.fingerprints["text_encoders"]
    assert sim.fingerprints["vae"] == bundle.fingerprints["vae"]
    _bitwise_equal(sim.vae, reference["vae"])
    _bitwise_equal(sim.backbone("schnell"), reference["schnell"])


def test_a_schnell_folder_without_shared_components_is_enough_next_to_dev(layout, tmp_path):
    slim = _copy(layout.flux_schnell, tmp_path / "schnell")
    for sub in ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
        shutil.rmtree(slim / sub)
    statuses = {s.component: s for s in check_weights(_with(layout, flux_schnell=slim), ["flux_dev", "flux_schnell"])}
    assert statuses["flux_schnell"].found, statuses["flux_schnell"].problem
    message = _load_error(_with(layout, flux_schnell=slim), backbones=("schnell",))
    assert "flux_schnell" in message and "missing sub-folder vae/" in message and "--idrift-flux-schnell" in message


# --------------------------------------------------------------------------------------------------
# Bad layouts: one WeightsError naming the component and the option (and the environment variable)


def _assert_names(message: str, component: str, option: str, env: str, *fragments: str) -> None:
    assert component in message and option in message and env in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_folder(layout, tmp_path):
    message = _load_error(_with(layout, flux_dev=tmp_path / "no-such-folder"))
    _assert_names(message, "flux_dev", "--idrift-flux-dev", "IDRIFT_FLUX_DEV", "no-such-folder", "does not exist")


def test_missing_transformer_sub_folder(layout, tmp_path):
    dev = _copy(layout.flux_dev, tmp_path / "dev")
    shutil.rmtree(dev / "transformer")
    message = _load_error(_with(layout, flux_dev=dev))
    _assert_names(message, "flux_dev", "--idrift-flux-dev", "IDRIFT_FLUX_DEV", "missing sub-folder transformer/")


def test_malformed_config_json(layout, tmp_path):
    dev = _copy(layout.flux_dev, tmp_path / "dev")
    (dev / "vae" / "config.json").write_text('{"_class_name": "AutoencoderKL", ')
    message = _load_error(_with(layout, flux_dev=dev))
    _assert_names(message, "flux_dev", "--idrift-flux-dev", "IDRIFT_FLUX_DEV", "vae/config.json",
                  "malformed config.json")


@pytest.mark.parametrize("damage", ["overwrite_length", "not_json", "truncate"])
def test_corrupt_safetensors(layout, tmp_path, damage):
    dev = _copy(layout.flux_dev, tmp_path / "dev")
    target = dev / "text_encoder" / "model.safetensors"
    data = bytearray(target.read_bytes())
    if damage == "overwrite_length":
        data[:8] = b"\xff" * 8
        expected = "corrupt safetensors header"
    elif damage == "not_json":
        data[8:12] = b"\x00\x01\x02\x03"
        expected = "corrupt safetensors header"
    else:
        data = data[: len(data) - 100]
        expected = "truncated safetensors file"
    target.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=expected) as info:
        read_safetensors_header(target)
    assert str(target) in str(info.value)
    message = _load_error(_with(layout, flux_dev=dev))
    _assert_names(message, "flux_dev", "--idrift-flux-dev", "IDRIFT_FLUX_DEV", expected, "model.safetensors")


def test_missing_shard_of_a_sharded_checkpoint(layout, tmp_path):
    root = _copy(layout.infiniteyou, tmp_path / "InfiniteYou")
    infusenet = root / "infu_flux_v1.0" / "aes_stage2" / "InfuseNetModel"
    sorted(infusenet.glob("*-of-*.safetensors"))[-1].unlink()
    message = _load_error(_with(layout, infiniteyou=root))
    _assert_names(message, "infiniteyou", "--idrift-infiniteyou", "IDRIFT_INFINITEYOU", "missing 1 of the 2 shards")


def test_image_proj_without_its_key(layout, tmp_path):
    root = _copy(layout.infiniteyou, tmp_path / "InfiniteYou")
    proj = root / "infu_flux_v1.0" / "aes_stage2" / "image_proj_model.bin"
    torch.save({"proj": tiny.build_components(0)["image_proj"].state_dict()}, proj)
    message = _load_error(_with(layout, infiniteyou=root))
    _assert_names(message, "infiniteyou", "--idrift-infiniteyou", "IDRIFT_INFINITEYOU", '"image_proj"', str(proj),
                  "'proj'")


def test_lfs_pointer_instead_of_weights(layout, tmp_path):
    root = _copy(layout.infiniteyou, tmp_path / "InfiniteYou")
    proj = root / "infu_flux_v1.0" / "aes_stage2" / "image_proj_model.bin"
    proj.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    message = _load_error(_with(layout, infiniteyou=root))
    _assert_names(message, "infiniteyou", "--idrift-infiniteyou", "IDRIFT_INFINITEYOU", "Git LFS pointer",
                  "git lfs pull")


def test_wrong_layout_infiniteyou_points_at_infusenet_folder(layout):
    infusenet = Path(layout.infiniteyou) / "infu_flux_v1.0" / "aes_stage2" / "InfuseNetModel"
    message = _load_error(_with(layout, infiniteyou=infusenet))
    _assert_names(message, "infiniteyou", "--idrift-infiniteyou", "IDRIFT_INFINITEYOU", "wrong layout",
                  "InfuseNetModel folder itself", "infu_flux_v1.0/", f"({layout.infiniteyou})")


def test_wrong_variant_names_the_variant_option(layout, tmp_path):
    root = _copy(layout.infiniteyou, tmp_path / "InfiniteYou")
    shutil.rmtree(root / "infu_flux_v1.0" / "sim_stage1")
    message = _load_error(_with(layout, infiniteyou=root, infu_variant="sim_stage1"))
    _assert_names(message, "infiniteyou", "--idrift-infu-variant", "IDRIFT_INFU_VARIANT", "sim_stage1", "aes_stage2")


def test_swapped_backbones_are_caught(layout):
    message = _load_error(_with(layout, flux_dev=layout.flux_schnell, flux_schnell=layout.flux_dev))
    assert "looks like FLUX.1-schnell, not FLUX.1-dev" in message
    assert "looks like FLUX.1-dev, not FLUX.1-schnell" in message


def test_hub_id_not_in_the_empty_cache(layout, tmp_path):
    message = _load_error(_with(layout, flux_dev="black-forest-labs/FLUX.1-dev"))
    _assert_names(message, "flux_dev", "--idrift-flux-dev", "IDRIFT_FLUX_DEV", "black-forest-labs/FLUX.1-dev",
                  "Hugging Face cache", str(tmp_path / "hf_home" / "hub"), "never downloads")


def test_hub_id_found_in_the_cache_offline(layout, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf_home" / "hub" / "models--black-forest-labs--FLUX.1-dev"
    _copy(layout.flux_dev, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    status = check_weights(_with(layout, flux_dev="black-forest-labs/FLUX.1-dev"), ["flux_dev"])[0]
    assert status.found, status.problem
    assert status.path == str(repo / "snapshots" / commit)
    assert status.fingerprint == check_weights(layout, ["flux_dev"])[0].fingerprint  # content, not location


def test_every_problem_in_one_error(layout, tmp_path):
    infusenet = Path(layout.infiniteyou) / "infu_flux_v1.0" / "aes_stage2" / "InfuseNetModel"
    message = _load_error(_with(layout, flux_dev=tmp_path / "missing", infiniteyou=infusenet,
                                arcface_ir_se50=tmp_path / "arcface.pth"))
    assert message.startswith("3 problems")
    lines = message.splitlines()[1:]
    assert len(lines) == 3
    for line, option in zip(lines, ("--idrift-flux-dev", "--idrift-infiniteyou", "--idrift-arcface-ir-se50")):
        assert option in line


# --------------------------------------------------------------------------------------------------
# Precedence: option > environment variable > default


def test_option_beats_environment_beats_default(monkeypatch):
    env = {"IDRIFT_FLUX_DEV": "/env/dev", "IDRIFT_VGG16": "/env/vgg.pth", "IDRIFT_INFU_VARIANT": "sim_stage1",
           "IDRIFT_FLUX_SCHNELL": ""}
    paths = resolve_weight_paths({"--idrift-flux-dev": "/opt/dev", "idrift_infiniteyou": "/opt/iy", "antelopev2": "",
                                  "--unrelated-option": "x"}, env=env)
    assert paths.flux_dev == "/opt/dev" and paths.origin("flux_dev") == "option"
    assert paths.infiniteyou == "/opt/iy" and paths.origin("infiniteyou") == "option"
    assert paths.vgg16 == "/env/vgg.pth" and paths.origin("vgg16") == "env"
    assert paths.infu_variant == "sim_stage1" and paths.origin("infu_variant") == "env"
    assert paths.flux_schnell == "black-forest-labs/FLUX.1-schnell" and paths.origin("flux_schnell") == "default"
    assert paths.antelopev2 is None and paths.origin("antelopev2") == "default"
    # os.environ by default; an argparse Namespace works too.
    monkeypatch.setenv("IDRIFT_FLUX_DEV", "/env2/dev")
    assert resolve_weight_paths().flux_dev == "/env2/dev"
    assert resolve_weight_paths(argparse.Namespace(flux_dev="/ns/dev", vgg16=None)).flux_dev == "/ns/dev"
    assert resolve_weight_paths({"flux_dev": None}).flux_dev == "/env2/dev"


def test_messages_say_where_a_path_came_from(layout, monkeypatch, tmp_path):
    monkeypatch.setenv("IDRIFT_FLUX_DEV", str(tmp_path / "from-env"))
    status = check_weights(resolve_weight_paths(), ["flux_dev"])[0]
    assert "(from IDRIFT_FLUX_DEV)" in status.problem
    status = check_weights(resolve_weight_paths({"flux_dev": str(tmp_path / "from-option")}), ["flux_dev"])[0]
    assert "(from --idrift-flux-dev)" in status.problem and "from-option" in status.problem


# --------------------------------------------------------------------------------------------------
# `idrift weights check` as users run it


def _run_check(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDRIFT_", "HF_"))}
    env.update(HF_HUB_CACHE=str(tmp_path / "empty_hf_cache"), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO),
               TORCH_HOME=str(tmp_path / "torch_home"))
    return subprocess.run([sys.executable, "-m", "idrift.cli", "weights", "check", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def _stand_ins(tmp_path: Path) -> tuple[Path, Path]:
    """antelopev2 and VGG16 have no tiny counterpart. `weights check` opens every file (idrift.models.verify),
    so the stand-ins are real: one-node ONNX graphs and a torch.save file."""
    import onnx
    from onnx import TensorProto, helper

    antelopev2 = tmp_path / "insightface" / "models" / "antelopev2"
    antelopev2.mkdir(parents=True)
    for name in ("scrfd_10g_bnkps.onnx", "glintr100.onnx", "genderage.onnx", "2d106det.onnx"):
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], name,
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        onnx.save(helper.make_model(graph), str(antelopev2 / name))
    vgg16 = tmp_path / "vgg16-397923af.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, vgg16)
    return antelopev2, vgg16


def test_weights_check_command_on_the_saved_layout(layout, tmp_path):
    from idrift.models.clip import save_tiny_clip

    antelopev2, vgg16 = _stand_ins(tmp_path)
    clip = save_tiny_clip(tmp_path / "clip")  # CLIP-T's model, in the layout of openai/clip-vit-large-patch14
    result = _run_check("--flux-dev", layout.flux_dev, "--flux-schnell", layout.flux_schnell,
                        "--infiniteyou", layout.infiniteyou, "--antelopev2", str(antelopev2.parents[1]),
                        "--arcface-ir-se50", layout.arcface_ir_se50, "--vgg16", str(vgg16), "--clip", str(clip),
                        tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:8]}
    assert set(rows) == {"flux_dev", "flux_schnell", "infiniteyou", "antelopev2", "arcface_ir_se50", "vgg16", "clip"}
    fingerprints = {s.component: s.fingerprint
                    for s in check_weights(_with(layout, antelopev2=antelopev2, vgg16=vgg16, clip=clip))}
    for component, row in rows.items():
        assert row[1] == "found" and row[2] == fingerprints[component], row
    assert "all real-profile weights found" in result.stdout

    as_json = _run_check("--json", "--flux-dev", layout.flux_dev, "--infiniteyou", layout.infiniteyou,
                         tmp_path=tmp_path)
    statuses = {s["component"]: s for s in json.loads(as_json.stdout)}
    assert as_json.returncode == 1
    assert statuses["flux_dev"]["found"] and not statuses["flux_schnell"]["found"]  # hub id, empty cache


def test_weights_check_command_on_an_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run_check("--flux-dev", str(empty), "--flux-schnell", str(empty), "--infiniteyou", str(empty),
                        "--antelopev2", str(empty), "--arcface-ir-se50", str(empty), "--vgg16", str(empty),
                        "--clip", str(empty), tmp_path=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    problems = result.stdout.split("problems:")[1].strip().splitlines()
    assert len(problems) == 7
    for opt in (o for o in WEIGHT_OPTIONS if o.field != "infu_variant"):
        line = next(line for line in problems if line.strip().startswith(opt.field))
        assert opt.cli_option in line and opt.env in line and str(empty) in line, line
    assert "MISSING" in result.stdout


# --------------------------------------------------------------------------------------------------
# Fingerprint units


def test_pickle_fingerprint_reads_head_and_tail(tmp_path):
    path = tmp_path / "w.bin"
    blob = bytearray(os.urandom(3 << 20))
    path.write_bytes(bytes(blob))
    first = fingerprint_file(path)
    assert fingerprint_file(path) == first
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    assert fingerprint_file(path) != first
    middle = fingerprint_file(path)
    blob[len(blob) // 2] ^= 1  # documented blind spot of the fast fingerprint
    path.write_bytes(bytes(blob))
    assert fingerprint_file(path) == middle


def test_folder_fingerprint_ignores_readmes_and_notices_configs(layout, tmp_path):
    vae = _copy(Path(layout.flux_dev) / "vae", tmp_path / "vae")
    base = fingerprint_folder(vae)
    (vae / "README.md").write_text("notes")
    assert fingerprint_folder(vae) == base
    config = json.loads((vae / "config.json").read_text())
    config["scaling_factor"] = 0.5
    (vae / "config.json").write_text(json.dumps(config))
    assert fingerprint_folder(vae) != base
