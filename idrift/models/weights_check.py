"""`check_weights`: the real profile's weights checked without loading a tensor, one status per component.

It resolves each component of a WeightPaths (`idrift.models.paths`), runs that component's layout
check (`idrift.models.component_checks`) and fingerprints what passes. Every problem is one
self-contained line naming the component, the path, what is wrong and the option and environment
variable that set it; `weights_problem_report` joins them into the one message of a WeightsError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from idrift.errors import WeightsError
from idrift.models.backbones import BY_COMPONENT, NAMES, REGISTRY, shared_components_from
from idrift.models.component_checks import (
    check_antelopev2,
    check_flux,
    check_infiniteyou,
    check_torch_file,
    clip_layout_problems,
)
from idrift.models.fingerprint import fingerprint_file, fingerprint_folder
from idrift.models.paths import (
    ARCFACE_FILE,
    INFU_VERSION_DIR,
    OPTIONS_BY_FIELD,
    VGG16_FILE,
    WeightPaths,
    arcface_candidates,
    insightface_antelopev2_candidates,
)

# Components check_weights knows, in report order: one per backbone (idrift.models.backbones), then the
# others (infu_variant is a setting of `infiniteyou`).
COMPONENTS = (*(b.component for b in REGISTRY), "infiniteyou", "antelopev2", "arcface_ir_se50", "vgg16", "clip")


@dataclass(frozen=True)
class WeightStatus:
    """The check of one component. `problems` holds one self-contained line per problem."""

    component: str
    path: str
    found: bool
    problems: tuple[str, ...]
    fingerprint: str | None
    option: str
    env: str

    @property
    def problem(self) -> str | None:
        return "\n".join(self.problems) if self.problems else None


def _fingerprint_or_problem(fn: Callable[[], str]) -> tuple[str | None, str | None]:
    try:
        return fn(), None
    except WeightsError as exc:
        return None, str(exc)


def check_weights(
    paths: WeightPaths,
    components: Iterable[str] | None = None,
    *,
    shared_from: str = shared_components_from(NAMES),
    option_prefix: str = "--idrift-",
) -> list[WeightStatus]:
    """Validate each component's layout without loading tensors; one WeightStatus per component.

    `components`: a subset of COMPONENTS (default: all). `shared_from`: the backbone ("dev", "schnell", ...)
    whose FLUX folder must also hold vae/, text encoders and tokenizers. `option_prefix`: how messages
    name options ("--idrift-" for pytest, "--" for `idrift weights check`). Every problem is one line
    naming the component, the path, what is wrong and the option and environment variable that set it.
    """
    wanted = list(COMPONENTS if components is None else components)
    unknown = [c for c in wanted if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown weight components {unknown}; known: {COMPONENTS}")
    if shared_from not in NAMES:
        raise ValueError(f"shared_from must be {' or '.join(map(repr, NAMES))}, got {shared_from!r}")
    statuses = []
    for component in wanted:
        opt = OPTIONS_BY_FIELD[component]
        option = opt.named(option_prefix)
        where = paths_where(paths, component, option_prefix)
        if component == "antelopev2" and paths.antelopev2 is None:
            searched = ", ".join(str(c) for c in insightface_antelopev2_candidates())
            where = f" (default: inside the InfiniteYou root, else insightface's model root: {searched})"
        sets = f"set {option} or {opt.env}"
        try:
            path, shown = paths.located(component)
        except WeightsError as exc:
            value = getattr(paths, component) or paths.infiniteyou
            statuses.append(WeightStatus(component, str(value), False, (f"{component}{where}: {exc}; {sets}",),
                                         None, option, opt.env))
            continue
        fingerprint_fn: Callable[[], str]
        if component in BY_COMPONENT:
            backbone = BY_COMPONENT[component]
            problems = check_flux(path, shown, backbone, shared=(backbone.name == shared_from))
            fingerprint_fn = lambda path=path: fingerprint_folder(path)
        elif component == "infiniteyou":
            var_opt = OPTIONS_BY_FIELD["infu_variant"]
            variant_names = f"{var_opt.named(option_prefix)} or {var_opt.env}"
            problems = check_infiniteyou(path, shown, paths.infu_variant, variant_names)
            fingerprint_fn = lambda path=path: fingerprint_folder(path / INFU_VERSION_DIR / paths.infu_variant)
        elif component == "antelopev2":
            problems, path = check_antelopev2(path, shown)
            fingerprint_fn = lambda path=path: fingerprint_folder(path)
        elif component == "arcface_ir_se50":
            problems, path = check_torch_file(path, shown, ARCFACE_FILE,
                                              f"the file {ARCFACE_FILE} (facexlib's ArcFace IR-SE50)")
            if paths.arcface_ir_se50 is None and problems:
                searched = ", ".join(str(c) for c in arcface_candidates())
                problems = [f"{problems[0]} (searched: {searched})"]
            fingerprint_fn = lambda path=path: fingerprint_file(path)
        elif component == "clip":
            problems = clip_layout_problems(path, shown)
            fingerprint_fn = lambda path=path: fingerprint_folder(path)
        else:  # vgg16
            problems, path = check_torch_file(path, shown, VGG16_FILE, f"torchvision's {VGG16_FILE}")
            fingerprint_fn = lambda path=path: fingerprint_file(path)
        fingerprint = None
        if not problems:
            fingerprint, problem = _fingerprint_or_problem(fingerprint_fn)
            if problem:
                problems = [problem]
        lines = tuple(f"{component}{where}: {p}; {sets}" for p in problems)
        statuses.append(WeightStatus(component, str(path), not problems, lines, fingerprint, option, opt.env))
    return statuses


def paths_where(paths: WeightPaths, name: str, option_prefix: str) -> str:
    """" (from IDRIFT_X)" or " (from --x)" when a value was not the default, for messages."""
    opt = OPTIONS_BY_FIELD[name]
    return {"env": f" (from {opt.env})", "option": f" (from {opt.named(option_prefix)})"}.get(paths.origin(name), "")


def weights_problem_report(statuses: Iterable[WeightStatus]) -> str | None:
    """All problems as one message (None when there is none), for a single WeightsError."""
    lines = [line for s in statuses for line in s.problems]
    if not lines:
        return None
    head = (f"{len(lines)} problem{'s' if len(lines) > 1 else ''} with the real-profile weights "
            "(fix them all, then rerun; `idrift weights check` prints the full table):")
    return "\n".join([head, *("  - " + line for line in lines)])
