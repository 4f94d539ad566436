"""Determinism and provenance.

CPU: the same RunSpec gives a BITWISE-identical image in two fresh processes (tiny profile, the dev
backbone with InfuseNet on and the keypoint control image, so every model, the VAE posterior sample of
the control image and the scheduler take part). The noise comes from the sample's own generator on the
execution device, seeded by the spec (InfiniteYou's draws, `InfiniteYouPipeline.noise`), never from the
global RNG, so nothing else a process did first can change it. Both processes use one torch thread:
the thread count is part of the setup, not of the spec. CPU matmuls are not bitwise independent of it
(measured: the Resampler's `to_kv` Linear, a (1, 9, 32) input, moves by one float32 ulp between 1 and 2
threads, and that moved one value of the 64x64 image by one level), so a store is bitwise reproducible
with the same thread count. The store and the baselines rely on this: a spec's image hash is its identity on a CPU
(`merge_stores` refuses two different images for one spec key), and tests/test_faults.py compares a
killed-and-resumed sweep with an uninterrupted one hash for hash.

GPU (not testable here: no GPU in CI): images are NOT expected to be bitwise identical across GPU
models, drivers, CUDA/cuBLAS/cuDNN or PyTorch versions, and in bf16 not always from run to run either
(kernel selection, split-K reductions and atomics change the summation order; bf16 keeps 8 bits of
mantissa, so a reordered sum moves a value by up to one bf16 ulp, which the 28 denoising steps then
carry on). PyTorch says so itself: "Completely reproducible results are not guaranteed across
PyTorch releases, individual commits, or different platforms. Furthermore, results may not be
reproducible between CPU and GPU executions, even when using identical seeds"
(https://pytorch.org/docs/stable/notes/randomness.html), and diffusers promises reproducibility
across platforms only "within a certain tolerance range"
(https://huggingface.co/docs/diffusers/using-diffusers/reusing_seeds). idrift therefore
(1) draws the noise as InfiniteYou's own code does, from a generator on the execution device seeded with
the spec's seed (`InfiniteYouPipeline.noise`): seed S gives the official image for seed S on the same
device type, and CUDA runs start from other latents than CPU runs (CPU and CUDA generators differ), so a
GPU baseline holds for its device type only and records the generator's device in its provenance
(`noise_provenance`); (2) never gates a GPU run on
image hashes: it gates per-sample metric values with the baseline's tolerances - the golden
pixel_mean of each sample within 0.5 of an 8-bit level (baselines/h100-synthetic.json, blessed on an
H100 in bf16), ID_sim within 0.02-0.03 absolute (baselines/paper.json), latency within 10 % on the
same GPU model only - with paired statistics; and (3) records the GPU, package versions and weight
fingerprints with every run, so a comparison across setups is flagged (the test below). Sharded GPU
runs never generate one spec twice (shards partition the spec keys), so `merge_stores`' refusal of
two different images for one key cannot be tripped by GPU nondeterminism. What this file cannot
check: bf16 run-to-run equality on an H100 (use `tests/sweep_child.py one OUT --profile synthetic
--device cuda --repeat 2` there), and whether `torch.use_deterministic_algorithms(True)` with
`CUBLAS_WORKSPACE_CONFIG=:4096:8` makes it bitwise (PyTorch's randomness notes above).

Provenance: a baseline whose weights fingerprint or key package versions differ from this run's is
flagged in the comparison, on a pass as well as on a failure (`pytest benchmarks` with a modified copy
of baselines/tiny-cpu.json, a real subprocess).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("sweep_child.py")


def _env(tmp: Path) -> dict:
    env = dict(os.environ, IDRIFT_CACHE=str(tmp / "cache"), PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def test_same_spec_is_bitwise_identical_in_two_fresh_processes(tmp_path):
    # Started together (two cores), each a fresh interpreter: nothing is shared but the code.
    procs = [subprocess.Popen([sys.executable, str(CHILD), "one", str(tmp_path / f"p{i}.png"),
                               "--backbone", "dev", "--steps", "4", "--control", "keypoints", "--seed", "3",
                               "--threads", "1"],
                              cwd=REPO, env=_env(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for i in (1, 2)]
    shas = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        [line] = [l for l in out.splitlines() if l.startswith("SHA ")]
        shas.append(line.split()[1])
    first, second = (np.asarray(Image.open(tmp_path / f"p{t}.png").convert("RGB")) for t in (1, 2))
    assert first.shape == (64, 64, 3) and first.std() > 1.0  # a real image, not a constant that always matches
    assert shas[0] == shas[1]
    np.testing.assert_array_equal(first, second)


def _run_benchmarks(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_guidance.py", "-q", "-p", "no:cacheprovider",
         "--idrift-store", str(tmp / "store"), *extra],
        cwd=REPO, env=_env(tmp), capture_output=True, text=True, timeout=600, check=False)


def test_a_baseline_from_other_weights_and_packages_is_flagged_even_when_it_passes(tmp_path):
    baseline = json.loads((REPO / "baselines" / "tiny-cpu.json").read_text())
    prov = baseline["provenance"]
    real_schnell = prov["weights"]["flux_schnell"]
    prov["weights"]["flux_schnell"] = "tiny:000000000000"  # blessed on other weights ...
    prov["packages"]["torch"] = "1.13.1"  # ... and another torch
    copy = tmp_path / "tiny-cpu-elsewhere.json"
    copy.write_text(json.dumps(baseline, indent=1))

    result = _run_benchmarks(tmp_path, "--idrift-baseline", str(copy))
    out = result.stdout + result.stderr
    # The figures are the same as the original baseline's, so the gate passes ...
    assert result.returncode == 0, out[-4000:]
    assert "failed" not in result.stdout.splitlines()[-1]
    # ... and the comparison still says it is not like for like, naming each difference.
    assert f"weights.flux_schnell: baseline tiny:000000000000, this run {real_schnell}" in out, out[-4000:]
    from importlib.metadata import version

    torch_version = version("torch")  # what the session records (torch.__version__ may carry +cu...)
    assert f"packages.torch: baseline 1.13.1, this run {torch_version}" in out, out[-4000:]
    assert "weights.flux_dev" not in out  # only what differs is flagged
