"""One GPU per pytest-xdist worker: `pytest -n N benchmarks` on a machine with N GPUs.

xdist names its workers gw0, gw1, ...; worker gwK runs on GPU K mod (number of visible GPUs). The
pin is made by narrowing `CUDA_VISIBLE_DEVICES` to that one GPU in the worker process, before torch
initialises CUDA, so every library in the worker (torch, onnxruntime, ...) sees exactly one GPU, as
`cuda:0`. Then it starts CUDA and finds the chosen GPU among the devices the runtime shows by its NVML
UUID (where another library started the CUDA driver first, the variable no longer applies and the GPU
keeps its index, `cuda:<i>`); it raises rather than let a worker share another's GPU. The session
allocates on the device the pin found. With more workers than GPUs several workers share a GPU (K mod
count); a `CUDA_VISIBLE_DEVICES` set by the user (a list of indices or UUIDs) is respected: the workers
share out the GPUs it lists (README "Scale out").

Which samples share a worker (`xdist_group`, with the plugin's `--dist loadgroup`): the steps of one
trajectory run always do; otherwise each run is its own group, so N workers share the grid evenly and each
keeps the backbones it meets resident, unless a memory mode keeps one backbone resident (then a
backbone's runs share a worker, as swapping backbones costs a copy of a whole backbone each time).

Counting GPUs does not initialise CUDA: `torch.cuda.device_count()` asks NVML first (and NVML reads
`CUDA_VISIBLE_DEVICES` each time). Only when NVML is unavailable does torch fall back to the CUDA
driver, after which the variable no longer applies to this process: the index path above.

Example (no torch needed):
    >>> choose_gpu("gw3", ["0", "1"])
    '1'
    >>> choose_gpu("gw0", []) is None  # no GPU: nothing to pin
    True
    >>> choose_gpu(None, ["0", "1"]) is None  # not an xdist worker
    True
"""

from __future__ import annotations

import os
import re

from idrift.errors import IdriftError

WORKER_ENV = "PYTEST_XDIST_WORKER"  # set by pytest-xdist in each worker process: gw0, gw1, ...
PINNED_ENV = "IDRIFT_WORKER_GPU"  # set by pin_xdist_worker: the GPU (index or UUID) this worker got
WORKER_CUDA_INDEX_ENV = "IDRIFT_WORKER_CUDA_INDEX"  # the worker's GPU as this process numbers it

_WORKER_ID = re.compile(r"gw(\d+)")


def worker_index(worker_id: str | None) -> int | None:
    """K of an xdist worker id "gwK"; None outside xdist (no id, or the controller's "master")."""
    if not worker_id or worker_id == "master":
        return None
    match = _WORKER_ID.fullmatch(worker_id)
    if match is None:
        raise IdriftError(f"{WORKER_ENV}={worker_id!r} is not a pytest-xdist worker id (gw0, gw1, ...)")
    return int(match.group(1))


def choose_gpu(worker_id: str | None, visible: list[str]) -> str | None:
    """The entry of `visible` (GPU indices or UUIDs, in CUDA order) that worker `worker_id` uses."""
    index = worker_index(worker_id)
    if index is None or not visible:
        return None
    return visible[index % len(visible)]


def xdist_group(spec, memory: str = "off") -> str:
    """The xdist_group of the test that generates `spec` (an `idrift.runner` RunSpec) under `--dist loadgroup`."""
    from idrift.runner import _run_key

    if spec.mode != "trajectory" and memory != "off":
        return spec.backbone
    return _run_key(spec)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries, without initialising CUDA."""
    import torch

    count = torch.cuda.device_count()  # NVML: no CUDA initialisation
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(count)]
    # CUDA ignores everything from the first invalid entry on; device_count() has counted the valid ones.
    return [entry.strip() for entry in listed.split(",")][:count]


def worker_gateway_specs(count: int, visible: list[str]) -> list[str]:
    """pytest-xdist gateway specs for `count` workers, worker gwK started with its GPU (K mod the visible
    count) in CUDA_VISIBLE_DEVICES: execnet sets the variable in the new interpreter before any of the
    worker's code runs, so no library can start CUDA with every GPU visible first.

        >>> worker_gateway_specs(2, ["0", "1"])[1].split("//")[:2]
        ['popen', 'env:CUDA_VISIBLE_DEVICES=1']
    """
    order = "" if os.environ.get("CUDA_DEVICE_ORDER") else "//env:CUDA_DEVICE_ORDER=PCI_BUS_ID"
    return [f"popen//env:CUDA_VISIBLE_DEVICES={choose_gpu(f'gw{k}', visible)}{order}" for k in range(count)]


def assign_worker_gpus(option) -> list[str] | None:
    """In the controller of `pytest -n N`: replace xdist's plain gateway specs (made from -n) by
    `worker_gateway_specs`, so each worker starts on its own GPU. A user's own --tx is left alone, and so
    is a machine without GPUs. Returns the new specs, or None when nothing changed."""
    tx = list(getattr(option, "tx", None) or [])
    if not getattr(option, "numprocesses", None) or not tx or any(spec != "popen" for spec in tx):
        return None
    visible = visible_gpus()
    if not visible:
        return None
    option.tx = worker_gateway_specs(len(tx), visible)
    return option.tx


def pin_xdist_worker(worker_id: str | None = None) -> str | None:
    """Pin this pytest-xdist worker to its GPU; return that GPU's CUDA_VISIBLE_DEVICES entry.

    Returns None (and changes nothing) outside xdist or on a machine without a GPU. Must run before
    anything initialises CUDA in this process (the plugin calls it first thing in pytest_configure).
    """
    worker_id = worker_id if worker_id is not None else os.environ.get(WORKER_ENV)
    index = worker_index(worker_id)
    if index is None:
        return None
    import torch

    if torch.cuda.is_initialized():
        raise IdriftError(
            f"xdist worker {worker_id}: CUDA was initialised before idrift could pin the worker to one GPU; "
            "something imported at startup (a conftest or plugin) uses CUDA. Move that work into a fixture or test"
        )
    visible = visible_gpus()
    chosen = choose_gpu(worker_id, visible)
    if chosen is None:
        return None
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # indices count as nvidia-smi and NVML count
    # NVML numbers GPUs in PCI bus order: an index names the same GPU for both only in that order.
    wanted = nvml_uuid(chosen) if os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" or chosen.startswith("GPU-") else None
    os.environ["CUDA_VISIBLE_DEVICES"] = chosen
    # The variable applies only if nothing in this process has started the CUDA driver yet, and another
    # library may have (torch.cuda.is_initialized() sees only torch's own start-up). Seen on a 2-GPU H100
    # host: both workers on GPU 0. So start CUDA now and find the chosen GPU among the devices the runtime
    # shows, by its UUID: right whichever way the driver was started.
    torch.cuda.init()
    local_index = runtime_index(worker_id, chosen, visible, wanted)
    torch.cuda.set_device(local_index)
    os.environ[WORKER_CUDA_INDEX_ENV] = str(local_index)
    os.environ[PINNED_ENV] = chosen
    return chosen


def nvml_uuid(entry: str) -> str | None:
    """The UUID ("GPU-...") of a CUDA_VISIBLE_DEVICES entry, from NVML without starting CUDA; None when
    NVML cannot tell (no NVML, a MIG entry)."""
    if entry.startswith("GPU-"):
        return entry
    if not entry.isdigit():
        return None
    import torch

    try:
        uuids = torch.cuda._raw_device_uuid_nvml()  # NVML's order: PCI bus order, as nvidia-smi lists them
    except (OSError, AttributeError):
        return None
    return uuids[int(entry)] if uuids and int(entry) < len(uuids) else None


def runtime_index(worker_id: str, chosen: str, visible: list[str], wanted: str | None) -> int:
    """The CUDA runtime's index of the chosen GPU in this (started) process."""
    import torch

    count = torch.cuda.device_count()
    if wanted is None:  # no UUID to go by: one device means the variable applied
        return 0 if count == 1 else visible.index(chosen)
    seen = [f"GPU-{torch.cuda.get_device_properties(i).uuid}" for i in range(count)]
    if wanted not in seen:
        raise IdriftError(f"xdist worker {worker_id}: its GPU {chosen} ({wanted}) is not among the devices CUDA "
                          f"shows this process ({', '.join(seen)}); run with CUDA_VISIBLE_DEVICES unset or "
                          "listing the GPUs to use")
    return seen.index(wanted)


def worker_cuda_device() -> str | None:
    """`cuda:<i>` for a pinned xdist worker, else None (use plain "cuda")."""
    index = os.environ.get(WORKER_CUDA_INDEX_ENV)
    return None if index is None else f"cuda:{index}"
