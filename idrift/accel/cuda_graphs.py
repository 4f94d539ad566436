"""CUDA graphs for the pipeline's GPU calls: `CallGraphs`.

Every call with static shapes runs through one: the text encoders (CLIP, T5), the identity tokens (IR-SE50 and
the Resampler), the VAE encoder of the control image, each denoising step's InfuseNet and backbone calls, and the
VAE decoder. A step of an 864x1152 image launches some two thousand kernels, the eager T5 encoder some thousand;
replaying them as one CUDA graph removes the CPU launch work and the dynamo guard checks of compiled code from
between them. Lossless: a replay runs the same kernels on the same addresses (tested bitwise on a GPU). A
denoising step gains little (it is GPU-bound); the launch-bound conditioning calls gain more.

Shapes are static per key: one graph per (call, shapes, dtypes, constant arguments such as InfuseNet's
conditioning scale), captured on first use. Each call copies its tensor inputs into the graph's own input
buffers, replays, and returns the graph's output tensors: they are overwritten by the next replay of that
graph, so the caller consumes them first or asks for a copy (``keep=True``: what the pipeline caches across
images). All graphs share one memory pool, which is safe because they never run concurrently and the outputs
of each graph stay allocated to it.

A call that cannot be captured (a host synchronisation inside it, say) raises `GraphCaptureError`, which names
the call and the way out (``accelerate(..., cuda_graphs=False)``); calls named in `eager_calls` run without a
graph (for A/B measurements of single calls).

A graph bakes in the addresses of the weights it read. Whatever replaces weights (fp8 conversion, moving a
backbone between devices, rebuilding it) must drop the graphs first: `fast.restore` does, and
`memory.fit_memory` refuses a pipeline that has them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from idrift.errors import IdriftError


class GraphCaptureError(IdriftError):
    """A call could not be captured as a CUDA graph."""


def signature(value: Any) -> Any:
    """The part of one argument that selects a graph: shape/dtype/device of tensors, structure of lists,
    the value of anything else (a constant baked into the captured kernels)."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype, str(value.device))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(signature(v) for v in value))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"CallGraphs: cannot key a graph on an argument of type {type(value).__name__}; "
                    "pass tensors, lists of tensors, numbers, strings or None")


def clone_tensors(value: Any) -> Any:
    """A copy of tensors (and tuples/lists of them): a graph's own input buffers, or outputs that the next
    replay must not overwrite."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return type(value)(clone_tensors(v) for v in value)
    return value


def _copy_inputs(static: Any, value: Any) -> None:
    if isinstance(static, torch.Tensor):
        if static.data_ptr() != value.data_ptr():
            static.copy_(value)
    elif isinstance(static, (list, tuple)):
        for s, v in zip(static, value):
            _copy_inputs(s, v)


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: dict
    outputs: Any
    capture_s: float
    replays: int = 0


class CallGraphs:
    """Captures and replays CUDA graphs of `fn(**kwargs)` per key (see the module docstring).

    Args:
        device: the CUDA device the calls run on.
        warmup_calls: eager calls on a side stream before capturing (cuBLAS/cuDNN workspaces, lazy init,
            and compilation of a new shape must happen outside the capture).
    """

    def __init__(self, device: str | torch.device, warmup_calls: int = 2):
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise ValueError(f"CallGraphs needs a CUDA device, got {self.device}")
        self.warmup_calls = warmup_calls
        self.pool = torch.cuda.graph_pool_handle()
        self._graphs: dict[tuple, _Graph] = {}
        self.eager_calls: set[str] = set()  # call names that run without a graph

    def __call__(self, name: str, fn: Callable[..., Any], **kwargs) -> Any:
        if name in self.eager_calls:
            return fn(**kwargs)
        key = (name, tuple(sorted((k, signature(v)) for k, v in kwargs.items())))
        entry = self._graphs.get(key)
        if entry is None:
            try:
                entry = self._graphs[key] = self._capture(fn, kwargs)
            except RuntimeError as exc:  # e.g. "operation not permitted when stream is capturing"
                raise GraphCaptureError(
                    f"CUDA graph capture of the pipeline's {name!r} call failed ({str(exc).splitlines()[0][:200]}); "
                    "something in it synchronises with the host. Accelerate with cuda_graphs=False "
                    "(idrift.accel.fast.accelerate) in a fresh process") from exc
        else:
            for k, v in kwargs.items():
                _copy_inputs(entry.inputs[k], v)
        entry.graph.replay()
        entry.replays += 1
        return entry.outputs

    @torch.no_grad()
    def _capture(self, fn: Callable[..., Any], kwargs: dict) -> _Graph:
        start = time.perf_counter()
        inputs = {k: clone_tensors(v) for k, v in kwargs.items()}
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup_calls):
                fn(**inputs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            outputs = fn(**inputs)
        torch.cuda.synchronize(self.device)
        return _Graph(graph, inputs, outputs, time.perf_counter() - start)

    def stats(self) -> dict:
        """How many graphs, their capture seconds (warm-up calls included), replays per call name, and the
        calls run without a graph."""
        replays: dict[str, int] = {}
        for (name, _), g in self._graphs.items():
            replays[name.partition(":")[0]] = replays.get(name.partition(":")[0], 0) + g.replays
        return {"graphs": len(self._graphs), "capture_s": sum(g.capture_s for g in self._graphs.values()),
                "replays": sum(replays.values()), "replays_by_call": replays, "eager_calls": sorted(self.eager_calls)}

    def clear(self) -> None:
        """Drop every graph (and with them the pool's memory once nothing else holds it)."""
        self._graphs.clear()
