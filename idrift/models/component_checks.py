"""The layout check of each real-profile component, from file names, JSON configs and headers only.

One function per component's expected layout (described in `idrift.models.paths`): a FLUX pipeline
folder, the InfiniteYou root, insightface's antelopev2 folder, a single torch checkpoint (ArcFace
IR-SE50, VGG16) and a CLIP folder. Each returns one line per problem that says what is wrong and,
for the usual mistakes (a sub-folder, a variant folder, a zip unpacked one level too deep), where
to point instead. `idrift.models.weights_check.check_weights` runs them.
"""

from __future__ import annotations

from pathlib import Path

from idrift.models.backbones import REGISTRY, Backbone
from idrift.models.file_checks import (
    class_of,
    model_folder_problems,
    read_json_dict,
    tokenizer_problems,
    torch_file_problem,
)
from idrift.models.fingerprint import is_lfs_pointer
from idrift.models.paths import DEFAULT_CLIP, IMAGE_PROJ_CONFIG_FILE, IMAGE_PROJ_FILE, INFU_VARIANTS, INFU_VERSION_DIR

FLUX_BACKBONE_SUBFOLDERS = ("transformer", "scheduler")
FLUX_SHARED_SUBFOLDERS = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")
# The antelopev2 files idrift's ArcFace backend uses (idrift.faces.arcface.REQUIRED_FILES).
ANTELOPEV2_REQUIRED = ("scrfd_10g_bnkps.onnx", "glintr100.onnx", "genderage.onnx")
CLIP_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")
CLIP_PREPROCESSOR_FILE = "preprocessor_config.json"


def check_flux(root: Path, shown: str, backbone: Backbone, shared: bool) -> list[str]:
    """The pipeline folder of `backbone`; `shared`: it must also hold the components the backbones share."""
    shared_subfolders = ", vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/" if shared else ""
    expected = f"a diffusers {backbone.title} folder (model_index.json, transformer/, scheduler/{shared_subfolders})"
    if not root.exists():
        return [f"{shown}: does not exist; expected {expected}"]
    if not root.is_dir():
        hint = " (single-file checkpoints are not supported)" if root.suffix == ".safetensors" else ""
        return [f"{shown}: is a file, not a folder; expected {expected}{hint}"]
    index_file = root / "model_index.json"
    if not index_file.is_file():
        cls = class_of(root)
        if cls == "FluxTransformer2DModel" or root.name in FLUX_BACKBONE_SUBFOLDERS + FLUX_SHARED_SUBFOLDERS:
            return [f"{shown}: wrong layout: this is the {root.name}/ sub-folder of a pipeline, expected {expected}; "
                    f"point at its parent {root.parent}"]
        nested = sorted(p for p in root.iterdir() if p.is_dir() and (p / "model_index.json").is_file())
        if nested:
            return [f"{shown}: wrong layout: no model_index.json here but {nested[0]} has one; point there"]
        if any(root.glob("*.safetensors")):
            return [f"{shown}: wrong layout: holds single-file checkpoints but no model_index.json; "
                    f"expected {expected} (the layout of the Hugging Face repo {backbone.hub_id})"]
        if not any(root.iterdir()):
            return [f"{shown}: is empty; expected {expected}"]
        return [f"{shown}: missing model_index.json; expected {expected}"]
    problems = []
    model_index, problem = read_json_dict(index_file)
    if problem:
        problems.append(f"{shown}/model_index.json: {problem}")
    elif "Flux" not in str(model_index.get("_class_name", "Flux")):
        problems.append(f"{shown}/model_index.json describes a {model_index.get('_class_name')}, not a FLUX pipeline")
    subfolders = FLUX_BACKBONE_SUBFOLDERS + (FLUX_SHARED_SUBFOLDERS if shared else ())
    for sub in subfolders:
        folder, sub_shown = root / sub, f"{shown}/{sub}"
        if not folder.is_dir():
            problems.append(f"{shown}: missing sub-folder {sub}/; expected {expected}")
        elif sub == "transformer":
            sub_problems = model_folder_problems(folder, sub_shown, "diffusers", "FluxTransformer2DModel")
            problems += sub_problems
            if not sub_problems:
                config, _ = read_json_dict(folder / "config.json")
                problems += _guidance_problems(sub_shown, backbone, bool(config.get("guidance_embeds", False)))
        elif sub == "vae":
            problems += model_folder_problems(folder, sub_shown, "diffusers", "AutoencoderKL")
        elif sub in ("text_encoder", "text_encoder_2"):
            problems += model_folder_problems(folder, sub_shown, "transformers")
        elif sub in ("tokenizer", "tokenizer_2"):
            problems += tokenizer_problems(folder, sub_shown)
        elif sub == "scheduler":
            if not (folder / "scheduler_config.json").is_file():
                problems.append(f"{sub_shown}: missing scheduler_config.json")
            else:
                _, problem = read_json_dict(folder / "scheduler_config.json")
                if problem:
                    problems.append(f"{sub_shown}/scheduler_config.json: {problem}")
    return problems


def _guidance_problems(shown: str, backbone: Backbone, guidance: bool) -> list[str]:
    """A transformer whose guidance embedding (`guidance`) is not the backbone's: the other backbone's folder."""
    if guidance == backbone.guidance_embeds:
        return []
    has = ("has a guidance embedding (guidance_embeds true)" if guidance
           else "has no guidance embedding (guidance_embeds false)")
    alike = " or ".join(b.title for b in REGISTRY if b.guidance_embeds == guidance)
    looks = f"this looks like {alike}, not {backbone.title}" if alike else f"this is not {backbone.title}"
    return [f"{shown}: {has}: {looks}"]


def check_infiniteyou(root: Path, shown: str, variant: str, variant_names: str) -> list[str]:
    """The InfiniteYou root for `variant`; `variant_names` names the option and variable that choose it."""
    expected = (f"the InfiniteYou root folder (holding {INFU_VERSION_DIR}/{{aes_stage2,sim_stage1}}/InfuseNetModel/, "
                f"{INFU_VERSION_DIR}/<variant>/{IMAGE_PROJ_FILE} and supports/insightface/models/antelopev2/)")
    if variant not in INFU_VARIANTS:
        return [f"{shown}: unknown InfiniteYou variant {variant!r}: use one of {', '.join(INFU_VARIANTS)} "
                f"(set {variant_names})"]
    if not root.exists():
        return [f"{shown}: does not exist; expected {expected}"]
    if not root.is_dir():
        return [f"{shown}: is a file, not a folder; expected {expected}"]
    version_dir = root / INFU_VERSION_DIR
    if not version_dir.is_dir():
        if class_of(root) == "FluxControlNetModel" or root.name == "InfuseNetModel":
            up = root.parent.parent.parent
            return [f"{shown}: wrong layout: this is an InfuseNetModel folder itself, expected {expected}; "
                    f"point at the root three levels up ({up})"]
        if (root / "InfuseNetModel").is_dir():
            return [f"{shown}: wrong layout: this is the {root.name}/ variant folder, expected {expected}; "
                    f"point at {root.parent.parent} (and choose the variant with {variant_names})"]
        if any((root / v).is_dir() for v in INFU_VARIANTS):
            return [f"{shown}: wrong layout: this is the {root.name}/ folder, expected {expected}; "
                    f"point at its parent {root.parent}"]
        if not any(root.iterdir()):
            return [f"{shown}: is empty; expected {expected}"]
        return [f"{shown}: missing {INFU_VERSION_DIR}/; expected {expected}"]
    variant_dir = version_dir / variant
    if not variant_dir.is_dir():
        have = sorted(p.name for p in version_dir.iterdir() if p.is_dir())
        return [f"{shown}: missing {INFU_VERSION_DIR}/{variant}/ (the variant set by {variant_names}; "
                f"this folder has: {', '.join(have) or 'nothing'})"]
    problems = []
    vshown = f"{shown}/{INFU_VERSION_DIR}/{variant}"
    infusenet = variant_dir / "InfuseNetModel"
    if not infusenet.is_dir():
        problems.append(f"{vshown}/InfuseNetModel/: missing (a diffusers FluxControlNetModel folder)")
    else:
        problems += model_folder_problems(infusenet, f"{vshown}/InfuseNetModel", "diffusers", "FluxControlNetModel")
    proj = variant_dir / IMAGE_PROJ_FILE
    if not proj.is_file():
        problems.append(f"{vshown}/{IMAGE_PROJ_FILE}: missing")
    else:
        problem = torch_file_problem(proj)
        if problem:
            problems.append(f"{vshown}: {problem}")
    proj_config = variant_dir / IMAGE_PROJ_CONFIG_FILE
    if proj_config.is_file():
        _, problem = read_json_dict(proj_config)
        if problem:
            problems.append(f"{vshown}/{IMAGE_PROJ_CONFIG_FILE}: {problem}")
    return problems


def check_antelopev2(root: Path, shown: str) -> tuple[list[str], Path]:
    """Like idrift.faces.arcface.resolve_antelopev2: the folder itself, or an insightface root holding
    models/antelopev2. Returns (problems, the antelopev2 folder)."""
    expected = f"insightface's antelopev2 folder with {', '.join(ANTELOPEV2_REQUIRED)}"
    if not root.is_dir():
        if not root.exists() and (root.parent / "antelopev2.zip").is_file():
            return [f"{shown}: does not exist, but antelopev2.zip is next to it: unzip it there"], root
        what = "is a file, not a folder" if root.exists() else "does not exist"
        return [f"{shown}: {what}; expected {expected}"], root
    if (root / "models" / "antelopev2").is_dir():  # an insightface root
        root, shown = root / "models" / "antelopev2", f"{shown}/models/antelopev2"
    if not any(root.glob("*.onnx")) and (root / "antelopev2").is_dir() and any((root / "antelopev2").glob("*.onnx")):
        return [f"{shown}: wrong layout: the model files are one level down in {root / 'antelopev2'} "
                "(antelopev2.zip unpacked one level too deep); point there or move them up"], root
    problems = []
    missing = [name for name in ANTELOPEV2_REQUIRED if not (root / name).is_file()]
    if missing:
        what = "is empty" if not any(root.iterdir()) else f"lacks {', '.join(missing)}"
        problems.append(f"{shown}: {what}; expected {expected}")
    for name in ANTELOPEV2_REQUIRED:
        file = root / name
        if name in missing:
            continue
        if file.stat().st_size == 0:
            problems.append(f"{shown}/{name}: is empty")
        elif is_lfs_pointer(file):
            problems.append(f"{shown}/{name}: is a Git LFS pointer, not the model: run `git lfs pull`")
    return problems, root


def check_torch_file(path: Path, shown: str, file_name: str, what: str) -> tuple[list[str], Path]:
    """A torch checkpoint `file_name`, given as the file or a folder holding it. Returns (problems, the file)."""
    if path.is_dir():
        if (path / file_name).is_file():
            path, shown = path / file_name, f"{shown}/{file_name}"
        else:
            return [f"{shown}: is a folder without {file_name}; expected {what}"], path
    if not path.exists():
        return [f"{shown}: does not exist; expected {what}"], path
    problem = torch_file_problem(path)
    return ([f"{shown}: {problem}"] if problem else []), path


def clip_layout_problems(folder: Path, shown: str) -> list[str]:
    """What is wrong with a CLIP folder, one line each (empty: loadable), from file names and JSON only."""
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        return [f"{shown}: {what}; expected a transformers CLIP folder (config.json, model.safetensors, "
                f"tokenizer files, {CLIP_PREPROCESSOR_FILE}), e.g. the Hugging Face repo {DEFAULT_CLIP}"]
    if not any(folder.iterdir()):
        return [f"{shown}: is empty; expected a transformers CLIP folder (config.json, model.safetensors, "
                f"tokenizer files, {CLIP_PREPROCESSOR_FILE}), e.g. the Hugging Face repo {DEFAULT_CLIP}"]
    problems = model_folder_problems(folder, shown, "transformers")
    if (folder / "config.json").is_file():
        config, problem = read_json_dict(folder / "config.json")
        if problem is None and config.get("model_type") != "clip":
            problems.append(f"{shown}/config.json describes model_type {config.get('model_type')!r}, expected "
                            "'clip' (a CLIPModel with text and vision towers, not a CLIPTextModel alone)")
    if not any((folder / name).is_file() for name in CLIP_TOKENIZER_FILES):
        problems.append(f"{shown}: no tokenizer files (expected one of {', '.join(CLIP_TOKENIZER_FILES)})")
    if not (folder / CLIP_PREPROCESSOR_FILE).is_file():
        problems.append(f"{shown}: missing {CLIP_PREPROCESSOR_FILE} (the image preprocessing CLIP was trained with)")
    return problems
