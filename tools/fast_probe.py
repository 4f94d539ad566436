"""Where a lossless schnell-4 image spends its time on one GPU, and what CUDA graphs, fewer syncs, a
compiled T5, fused q/k/v projections, fp8 scaling variants and First-Block-Cache would save. A measuring
script for deciding what idrift.pipeline.fast does (not a test; benchmarks/test_speed.py is the benchmark).
Synthetic profile, 864x1152 bf16, one CUDA GPU; writes JSON after every experiment, a profiler table and a
Chrome trace beside it.

    python tools/fast_probe.py --out out/fast_probe.json             # ~4 min on an H100, cold compile cache
    python tools/fast_probe.py --out out/fast_probe_warm.json --warm-only   # then: compile from the warm cache

Results of 2026-11-25 (H100): measurements/h100/fast_probe*.json; README "Fast paths".
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

RESULTS: dict = {}
OUT: Path


def save():
    OUT.write_text(json.dumps(RESULTS, indent=1, default=str))


def sync():
    torch.cuda.synchronize()


def timed(fn, rounds=5, warm=1):
    for _ in range(warm):
        fn()
    out = []
    for _ in range(rounds):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return {"median_s": statistics.median(out), "all": out}


def experiment(name):
    def wrap(fn):
        def run(*a, **k):
            t = time.perf_counter()
            try:
                RESULTS[name] = fn(*a, **k)
            except Exception as exc:  # keep going: record why
                RESULTS[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000], "trace": traceback.format_exc()[-3000:]}
            RESULTS.setdefault("wall", {})[name] = time.perf_counter() - t
            print(name, json.dumps(RESULTS[name], default=str)[:600], flush=True)
            save()
        return run
    return wrap


def main():
    global OUT
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--warm-only", action="store_true")
    args = p.parse_args()
    OUT = Path(args.out)
    from memory_24gb import latency_specs, synthetic_reference

    from idrift.metrics.latency import StageTimer
    from idrift.models.synthetic import build_synthetic_bundle
    from idrift.pipeline import infinite_you
    from idrift.pipeline.fast import accelerate, configure_compile_cache
    from idrift.pipeline.infinite_you import InfiniteYouPipeline

    cache = configure_compile_cache()
    RESULTS["cache_dir"] = cache
    RESULTS["cache_files_before"] = sum(len(f) for _, _, f in os.walk(cache))
    t = time.perf_counter()
    bundle = build_synthetic_bundle(device="cuda")
    pipe = InfiniteYouPipeline(bundle)
    RESULTS["build_s"] = time.perf_counter() - t
    specs = latency_specs("synthetic", bundle.fingerprint)
    schnell, dev = specs["schnell-4"], specs["dev-28"]
    ref = synthetic_reference()
    bundle.backbone("dev")

    def e2e(spec, timer=True):
        def f():
            pipe.clear_caches()
            return pipe(spec, ref, timer=StageTimer("cuda") if timer else None)
        return f

    report = accelerate(pipe, "lossless", cuda_graphs=False)  # the probe captures its own graph below
    RESULTS["accelerate"] = {k: report.get(k) for k in ("techniques", "skipped", "setup_s")}
    for spec in (schnell, dev):
        timer = StageTimer("cuda")
        pipe.clear_caches()
        sync()
        t = time.perf_counter()
        pipe(spec, ref, timer=timer)
        sync()
        RESULTS.setdefault("first_call", {})[spec.config_label] = {"s": time.perf_counter() - t, "stages": timer.seconds}
        save()
    RESULTS["cache_files_after"] = sum(len(f) for _, _, f in os.walk(cache))
    if args.warm_only:
        RESULTS["schnell4_steady"] = timed(e2e(schnell), rounds=3)
        save()
        return

    @experiment("schnell4_timer")
    def _():
        r = timed(e2e(schnell), rounds=5)
        timer = StageTimer("cuda")
        pipe.clear_caches()
        pipe(schnell, ref, timer=timer)
        r["stages"] = timer.seconds
        return r
    _()

    @experiment("schnell4_no_timer")
    def _():
        return timed(e2e(schnell, timer=False), rounds=5)
    _()

    @experiment("schnell4_no_timer_no_nan_sync")
    def _():
        original = infinite_you.nonfinite_samples
        infinite_you.nonfinite_samples = lambda x, specs: ""
        try:
            return timed(e2e(schnell, timer=False), rounds=5)
        finally:
            infinite_you.nonfinite_samples = original
    _()

    @experiment("profile_schnell4")
    def _():
        from torch.profiler import ProfilerActivity, profile

        pipe.clear_caches()
        sync()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t = time.perf_counter()
            pipe(schnell, ref)
            sync()
            wall = time.perf_counter() - t
        cats = {}
        total = 0.0
        for ev in prof.events():
            if ev.device_type.name != "CUDA":
                continue
            name = ev.name.lower()
            us = ev.device_time if hasattr(ev, "device_time") else ev.cuda_time
            total += us
            if any(k in name for k in ("gemm", "nvjet", "cutlass", "sm90_xmma", "matmul", "scaled_mm")):
                c = "gemm"
            elif any(k in name for k in ("flash", "fmha", "cudnn", "attention", "sdpa")):
                c = "attention"
            elif "conv" in name or "implicit" in name:
                c = "conv"
            elif name.startswith("triton"):
                c = "triton"
            elif "memcpy" in name or "memset" in name:
                c = "memcpy"
            else:
                c = "other"
            cats[c] = cats.get(c, 0.0) + us / 1e6
        top = prof.key_averages().table(sort_by="cuda_time_total" if hasattr(prof, "key_averages") else None, row_limit=25)
        (OUT.parent / "profile_table.txt").write_text(top)
        try:
            prof.export_chrome_trace(str(OUT.parent / "schnell4_trace.json"))
        except Exception:
            pass
        return {"wall_s": wall, "gpu_kernel_s": total / 1e6, "categories_s": cats}
    _()

    # one denoising step (InfuseNet + backbone) as the loop runs it, vs captured in a CUDA graph
    @experiment("cuda_graph_step")
    def _():
        backbone = bundle.backbone("schnell")
        pipe.clear_caches()
        text = pipe.encode_prompt(schnell.prompt)
        id_tokens = pipe.identity_tokens(ref)
        control = pipe.control_latents(ref, schnell)
        latents, lh, lw = pipe.initial_latents(schnell)
        img_ids = infinite_you.latent_image_ids(lh, lw, pipe.device, pipe.dtype)
        t_static = torch.full((1,), 1000.0, device="cuda", dtype=pipe.dtype)
        x_static = latents.clone()

        @torch.no_grad()
        def step():
            bs, ss = pipe.infusenet_residuals(x_static, t_static[0], control, id_tokens, text.pooled, img_ids, 1.0)
            return backbone(hidden_states=x_static, timestep=t_static / 1000, guidance=None,
                            pooled_projections=text.pooled, encoder_hidden_states=text.prompt_embeds,
                            controlnet_block_samples=bs, controlnet_single_block_samples=ss,
                            txt_ids=text.text_ids, img_ids=img_ids, return_dict=False)[0]
        eager = timed(step, rounds=8, warm=2)
        ref_out = step().float()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        t0 = time.perf_counter()
        with torch.cuda.graph(graph):
            out_static = step()
        capture_s = time.perf_counter() - t0
        graphed = timed(graph.replay, rounds=8, warm=2)
        diff = float((out_static.float() - ref_out).abs().max())
        return {"step_compiled_s": eager["median_s"], "step_graph_s": graphed["median_s"], "capture_s": capture_s,
                "max_abs_diff_graph_vs_compiled": diff, "mem_after_gb": torch.cuda.memory_allocated() / 1e9}
    _()

    @experiment("t5_compile")
    def _():
        enc = bundle.text_encoder_2

        def encode():
            pipe.clear_caches()
            pipe.encode_prompt(schnell.prompt)
        before = timed(encode, rounds=5)
        ref_out = (pipe.clear_caches(), pipe.encode_prompt(schnell.prompt))[1].prompt_embeds.float()
        t0 = time.perf_counter()
        for block in enc.encoder.block:
            block.compile(dynamic=False)
        pipe.clear_caches()
        pipe.encode_prompt(schnell.prompt)
        sync()
        comp_s = time.perf_counter() - t0
        after = timed(encode, rounds=5)
        pipe.clear_caches()
        out = pipe.encode_prompt(schnell.prompt).prompt_embeds.float()
        rel = float((out - ref_out).norm() / ref_out.norm())
        clip = bundle.text_encoder
        return {"eager_s": before["median_s"], "compiled_s": after["median_s"], "compile_s": comp_s, "rel_diff": rel,
                "clip_params": sum(p.numel() for p in clip.parameters())}
    _()

    @experiment("fp8_matmul_micro")
    def _():
        from idrift.pipeline.fast import Fp8Linear, quantize_fp8

        out = {}
        for (k, n) in ((3072, 3072), (3072, 12288), (12288, 3072), (15360, 3072), (3072, 21504)):
            lin = torch.nn.Linear(k, n, device="cuda", dtype=torch.bfloat16)
            x = torch.randn(4400, k, device="cuda", dtype=torch.bfloat16)
            row = {"bf16_s": timed(lambda: lin(x), rounds=20, warm=3)["median_s"]}
            for scaling in ("rowwise", "tensorwise"):
                f = Fp8Linear.from_linear(lin, scaling)
                row[f"{scaling}_eager_s"] = timed(lambda: f(x), rounds=20, warm=3)["median_s"]
                cf = torch.compile(f, fullgraph=True, dynamic=False)
                row[f"{scaling}_compiled_s"] = timed(lambda: cf(x), rounds=20, warm=3)["median_s"]
                xq, xs = quantize_fp8(x, dim=1 if scaling == "rowwise" else None)
                row[f"{scaling}_mm_only_s"] = timed(lambda: torch._scaled_mm(
                    xq, f.weight.t(), scale_a=xs, scale_b=f.weight_scale, out_dtype=torch.bfloat16), rounds=20, warm=3)["median_s"]
            out[f"{k}x{n}"] = row
        return out
    _()

    @experiment("fbc_lossless")
    def _():
        from idrift.claims import DRIFT_STEPS
        from idrift.pipeline.step_cache import disable_step_cache, enable_step_cache

        res = {}
        for thr in (0.12, 0.2):
            cache = enable_step_cache(pipe, thr)
            try:
                res[f"schnell4_{thr}"] = timed(e2e(schnell), rounds=3)
                res[f"schnell4_{thr}_skips"] = cache.stats()["last_image"]["skipped"]
                res[f"dev28_{thr}"] = timed(e2e(dev), rounds=2)
                res[f"dev28_{thr}_skips"] = cache.stats()["last_image"]["skipped"]

                def traj():
                    pipe.clear_caches()
                    return pipe(dev.replace(steps=DRIFT_STEPS[-1]), ref, trajectory_steps=DRIFT_STEPS)
                res[f"trajectory_{thr}"] = timed(traj, rounds=1, warm=1)
                res[f"trajectory_{thr}_skips"] = cache.stats()["last_image"]["skipped"]
            finally:
                disable_step_cache(pipe)

        def traj0():
            pipe.clear_caches()
            return pipe(dev.replace(steps=DRIFT_STEPS[-1]), ref, trajectory_steps=DRIFT_STEPS)
        res["trajectory_no_fbc"] = timed(traj0, rounds=1, warm=0)
        return res
    _()

    @experiment("fused_qkv_blocks")
    def _():
        # one double and one single block, compiled, with and without fused projections
        import copy

        backbone = bundle.backbone("schnell")
        d0, s0 = backbone.transformer_blocks[0], backbone.single_transformer_blocks[0]
        hs = torch.randn(1, 3888, 3072, device="cuda", dtype=torch.bfloat16)
        ctx = torch.randn(1, 512, 3072, device="cuda", dtype=torch.bfloat16)
        temb = torch.randn(1, 3072, device="cuda", dtype=torch.bfloat16)
        ids = torch.zeros(4400, 3, device="cuda", dtype=torch.bfloat16)
        rot = backbone.pos_embed(ids)
        res = {}
        for name, blk in (("double", d0), ("single", s0)):
            base = timed(lambda: blk(hidden_states=hs, encoder_hidden_states=ctx, temb=temb, image_rotary_emb=rot), rounds=10, warm=2)
            fused = copy.deepcopy(blk._orig_mod if hasattr(blk, "_orig_mod") else blk)
            fused._compiled_call_impl = None
            fused.attn.fuse_projections()
            fused.compile(fullgraph=True, dynamic=False)
            f = timed(lambda: fused(hidden_states=hs, encoder_hidden_states=ctx, temb=temb, image_rotary_emb=rot), rounds=10, warm=2)
            res[name] = {"compiled_s": base["median_s"], "compiled_fused_s": f["median_s"]}

        return res
    _()


if __name__ == "__main__":
    main()
