"""InfiniteYou's optional LoRAs: loaded as diffusers loads FLUX LoRAs, part of the spec key and provenance.

The LoRAs are made here with peft on the tiny FLUX transformer (random, non-zero A and B) and saved by
diffusers' own `FluxPipeline.save_lora_weights`, so the files have the layout of real FLUX LoRAs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline
from tiny_runs import pixels, tiny_spec

from idrift.errors import IdriftError
from idrift.models.lora import apply_loras, lora_label, lora_provenance, parse_lora
from idrift.models.tiny import build_backbone, build_tiny_bundle
from idrift.pipeline.infinite_you import InfiniteYouPipeline


def _make_lora(folder: Path, seed: int, targets=("to_q", "to_k", "to_v", "to_out.0")) -> Path:
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    model = build_backbone("dev", 0)
    torch.manual_seed(seed)
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=list(targets), init_lora_weights=False))
    layers = {k: v * 4 for k, v in get_peft_model_state_dict(model).items()}  # strong enough to move pixels
    FluxPipeline.save_lora_weights(folder, transformer_lora_layers=layers)
    return folder / "pytorch_lora_weights.safetensors"


@pytest.fixture(scope="module")
def loras(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("loras")
    return _make_lora(root / "realism", 1), _make_lora(root / "anti_blur", 2, targets=("to_q", "proj_out"))


def _inputs(model):
    g = torch.Generator().manual_seed(0)
    cfg = model.config
    return dict(hidden_states=torch.randn(1, 16, cfg.in_channels, generator=g),
                encoder_hidden_states=torch.randn(1, 8, cfg.joint_attention_dim, generator=g),
                pooled_projections=torch.randn(1, cfg.pooled_projection_dim, generator=g),
                timestep=torch.tensor([0.5]), guidance=torch.tensor([3.5]), txt_ids=torch.zeros(8, 3),
                img_ids=torch.zeros(16, 3), return_dict=False)


def test_loras_load_as_diffusers_flux_pipeline_loads_them(loras):
    """idrift's backbone with two LoRAs equals a FluxPipeline's transformer after InfiniteYou's load_loras
    (load_lora_weights per LoRA, then set_adapters with the scales), bitwise."""
    bundle = build_tiny_bundle()
    apply_loras(bundle, [f"{loras[0]}:0.7", f"{loras[1]}:0.3"])
    ours = bundle.backbone("dev")
    theirs = FluxPipeline(scheduler=None, vae=None, text_encoder=bundle.text_encoder, tokenizer=None,
                          text_encoder_2=None, tokenizer_2=None, transformer=build_backbone("dev", 0))
    names = []
    for i, path in enumerate(loras):
        theirs.load_lora_weights(str(path), adapter_name=f"lora{i}")
        names.append(f"lora{i}")
    theirs.set_adapters(names, adapter_weights=[0.7, 0.3])
    with torch.no_grad():
        out = ours(**_inputs(ours))[0]
        assert torch.equal(out, theirs.transformer(**_inputs(ours))[0])
        assert not torch.equal(out, build_backbone("dev", 0)(**_inputs(ours))[0])  # the LoRAs act


def test_loras_change_the_image_reach_both_backbones_and_scale_zero_changes_nothing(loras, reference):
    base = InfiniteYouPipeline(build_tiny_bundle())
    bundle = build_tiny_bundle()
    apply_loras(bundle, [str(loras[0])])
    pipe = InfiniteYouPipeline(bundle)
    assert not np.array_equal(pixels(pipe(tiny_spec(), reference)), pixels(base(tiny_spec(), reference)))
    schnell = tiny_spec(backbone="schnell", guidance=0.0)
    assert not np.array_equal(pixels(pipe(schnell, reference)), pixels(base(schnell, reference)))  # built later
    assert all(parse_lora(str(loras[0])).adapter_name in bundle.backbone(b).peft_config for b in ("dev", "schnell"))
    zero = build_tiny_bundle()
    apply_loras(zero, [f"{loras[0]}:0"])
    zero_image = InfiniteYouPipeline(zero)(tiny_spec(), reference)
    assert np.array_equal(pixels(zero_image), pixels(base(tiny_spec(), reference)))


def test_loras_are_part_of_the_spec_key_and_the_provenance(loras, tmp_path):
    from idrift.claims import CLAIMS_BY_ID
    from idrift.session import BenchmarkSession, SessionOptions

    label = lora_label([f"{loras[0]}:0.7", str(loras[1])])
    first, second = parse_lora(str(loras[0])).fingerprint, parse_lora(str(loras[1])).fingerprint
    assert label == f"{first}*0.7+{second}*1" and first != second
    assert lora_label([]) == ""
    spec = tiny_spec()
    assert spec.replace(loras=label).key != spec.key != spec.replace(loras=lora_label([f"{loras[0]}:0.5"])).key
    assert spec.replace(loras="").key == spec.key  # no LoRA: the keys every earlier store holds
    prov = lora_provenance([f"{loras[0]}:0.7"])
    assert prov == [{"path": str(loras[0]), "fingerprint": first, "scale": 0.7, "adapter": f"idrift_lora_{first}"}]
    session = BenchmarkSession(SessionOptions(profile="tiny", store=str(tmp_path / "store"),
                                              loras=(f"{loras[0]}:0.7", str(loras[1]))))
    specs = session.specs(CLAIMS_BY_ID["table1_backbone_swap"])
    assert specs and {s.loras for s in specs} == {label}
    assert session.provenance["loras"] == lora_provenance([f"{loras[0]}:0.7", str(loras[1])])


def test_a_lora_folder_is_read_like_diffusers_folders(loras):
    assert parse_lora(f"{loras[0].parent}:0.5").file == loras[0]


@pytest.mark.parametrize("value,says", [
    ("{tmp}/missing.safetensors", "no such file"),
    ("{tmp}", "folder without pytorch_lora_weights.safetensors"),
    ("{lora}:nan", "finite number"),
])
def test_a_bad_lora_option_is_one_clear_line(loras, tmp_path, value, says):
    from idrift.session import SessionOptions

    value = value.format(tmp=tmp_path, lora=loras[0])
    with pytest.raises(IdriftError) as info:
        SessionOptions(profile="tiny", loras=(value,), command="idrift run")
    message = str(info.value)
    assert message.startswith(f"--lora: LoRA {value!r}: ") and says in message and "\n" not in message


def test_the_same_lora_twice_is_refused(loras):
    from idrift.models.lora import parse_loras

    with pytest.raises(IdriftError, match="same file"):
        parse_loras([str(loras[0]), f"{loras[0].parent}:0.5"])


def test_a_lora_for_another_model_is_refused_in_one_line(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "sdxl.safetensors"
    save_file({"unet.down_blocks.0.lora.down.weight": torch.zeros(4, 8)}, str(path))
    bundle = build_tiny_bundle()
    apply_loras(bundle, [str(path)])
    with pytest.raises(IdriftError, match=r"sdxl\.safetensors"):
        bundle.backbone("dev")
