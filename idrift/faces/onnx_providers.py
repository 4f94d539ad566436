"""Which onnxruntime execution provider the ArcFace backend runs on, and why.

insightface depends on the CPU wheel `onnxruntime`. GPU runners also install `onnxruntime-gpu`; both
wheels write the same `onnxruntime/` folder, and whichever was installed LAST wins, silently. When the
CPU wheel wins on a CUDA machine, the face metric runs on the CPU with no error. `provider_report()`
says which distributions are installed, which providers onnxruntime offers, and warns in exactly that
case; every ArcFace session records the provider it really got in its provenance. The report also
records the version of the onnxruntime module actually imported (the wheels' metadata can disagree
with it) and flags a CPU+GPU double install.

Example:
    >>> from idrift.faces.onnx_providers import select_providers
    >>> select_providers(["CPUExecutionProvider"])
    ['CPUExecutionProvider']
    >>> select_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])
    ['CUDAExecutionProvider', 'CPUExecutionProvider']
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import metadata

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
GPU_FIX = "pip install --force-reinstall --no-deps onnxruntime-gpu"


def available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def select_providers(available: Sequence[str] | None = None) -> list[str]:
    """CUDA (with CPU fallback) when onnxruntime offers it, else CPU only.

    Other providers (TensorRT, CoreML, Azure) are not used: the identity numbers are stored as
    baselines, and a provider that fuses or lowers precision differently could move them.
    """
    available = available_providers() if available is None else list(available)
    if CUDA in available:
        return [CUDA, CPU]
    if CPU in available:
        return [CPU]
    raise RuntimeError(f"onnxruntime offers neither {CUDA} nor {CPU} (it offers {available}); reinstall onnxruntime")


def preload_cuda_libraries() -> str:
    """Load the CUDA and cuDNN libraries onnxruntime-gpu needs before its CUDA sessions are made.

    onnxruntime-gpu (1.21+) finds them through `onnxruntime.preload_dlls()`: from the `nvidia-*` pip wheels
    that torch already installed, or the system paths. Without it a session asked for the CUDA provider can
    silently come up on the CPU. Returns what happened, for the provenance."""
    import onnxruntime

    if not hasattr(onnxruntime, "preload_dlls"):
        return (
            f"onnxruntime {onnxruntime.__version__} has no preload_dlls (older than 1.21): "
            "relying on the library path"
        )
    try:
        onnxruntime.preload_dlls()
    except Exception as exc:  # a missing library shows up as the session's provider; record why
        return f"preload_dlls failed: {type(exc).__name__}: {str(exc)[:200]}"
    return "preload_dlls ok"


def installed_distributions() -> dict[str, str | None]:
    """Versions of the onnxruntime wheels installed in this environment (None = not installed)."""
    versions = {}
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def imported_onnxruntime() -> dict:
    """The onnxruntime module actually imported: its own __version__ and file. With both wheels
    installed, the distribution metadata can name one wheel while the module is the other's."""
    try:
        import onnxruntime
    except ImportError:
        return {"version": None, "file": None}
    return {"version": getattr(onnxruntime, "__version__", None), "file": getattr(onnxruntime, "__file__", None)}


def torch_sees_cuda() -> bool | None:
    """Whether torch reports a CUDA device; None if torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return bool(torch.cuda.is_available())


def provider_report(
    *,
    available: Sequence[str] | None = None,
    distributions: dict[str, str | None] | None = None,
    torch_cuda: bool | None | str = "detect",
) -> dict:
    """Installed onnxruntime distributions, available and selected providers, and a warning if the
    CUDA provider is missing on a CUDA machine.

    The keyword arguments default to this environment; passing them evaluates the rule for another one.
    """
    available = available_providers() if available is None else list(available)
    distributions = installed_distributions() if distributions is None else dict(distributions)
    imported = imported_onnxruntime()
    if torch_cuda == "detect":
        torch_cuda = torch_sees_cuda()
    warning = None
    if torch_cuda and CUDA not in available:
        if distributions.get("onnxruntime-gpu") and distributions.get("onnxruntime"):
            warning = (
                "WARNING: torch sees a CUDA device but onnxruntime offers no CUDAExecutionProvider, and both "
                f"onnxruntime {distributions['onnxruntime']} and onnxruntime-gpu {distributions['onnxruntime-gpu']} "
                "are installed: the CPU wheel (pulled in by insightface) overwrote the GPU one, so the face "
                f"metric runs on the CPU. Fix: `{GPU_FIX}`"
            )
        elif distributions.get("onnxruntime-gpu"):
            warning = (
                "WARNING: torch sees a CUDA device and onnxruntime-gpu is installed, but onnxruntime offers no "
                "CUDAExecutionProvider (CUDA/cuDNN libraries not found?); the face metric runs on the CPU"
            )
        else:
            warning = (
                "WARNING: torch sees a CUDA device but only the CPU onnxruntime is installed; the face metric "
                f"runs on the CPU. For the GPU: `{GPU_FIX}`"
            )
    double = bool(distributions.get("onnxruntime") and distributions.get("onnxruntime-gpu"))
    note = (f"both onnxruntime {distributions['onnxruntime']} and onnxruntime-gpu {distributions['onnxruntime-gpu']} "
            f"are installed into one onnxruntime/ folder; the imported module is {imported['version']}. To keep "
            f"one: `pip uninstall -y onnxruntime && {GPU_FIX}`") if double else None
    return {
        "imported": imported,
        "double_install": double,
        "double_install_note": note,
        "distributions": distributions,
        "available_providers": available,
        "selected_providers": select_providers(available),
        "torch_cuda": torch_cuda,
        "python": sys.version.split()[0],
        "warning": warning,
    }
