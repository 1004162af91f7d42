"""The training step as a CUDA graph: captured once, then replayed for every batch.

The models here are tiny: a step is a dozen kernel launches and little arithmetic, so on a GPU
it costs what launching costs. A CUDA graph records the step's launches once (forward, the
loss Function's hand-written backward, through autograd or called by epoch.linear_step, the
gradient norms, the optimizer's update) and replays them with one call. Everything the step
reads must then live at fixed addresses: the batch's row indices are copied into a static
index tensor, the learning rate (and Adam's step count) become device tensors that the
schedule (the step) changes in place, and the step's outputs (logits, gradient norms) are
cloned after each replay.

`GraphedStep` runs the first WARMUP steps eagerly on a side stream (as PyTorch asks before a
capture; they are ordinary training steps), captures the next one and replays from then on.
It stays eager, saying why once in the log, where capture is impossible: an optimizer that
cannot keep its per-step numbers on the device, a batch of another shape (the last, partial
batch of an epoch runs eagerly), or a capture that fails. `trainer.cuda_graph=false` turns it
off.

Example:
    >>> step = GraphedStep(eager_step, optimizer, device)  # doctest: +SKIP
    >>> z, norms = step(idx)  # as eager_step(idx), in one launch  # doctest: +SKIP
"""

import logging

import torch

__all__ = ["WARMUP", "GraphedStep", "capture_refusal"]

log = logging.getLogger(__name__)
WARMUP = 3  # eager steps before the capture (cuBLAS workspaces, the optimizer's buffers)


def capture_refusal(optimizer, device) -> str | None:
    """Why the step cannot be captured on `device` with `optimizer`, or None when it can."""
    if torch.device(device).type != "cuda":
        return "not a CUDA device"
    if not getattr(optimizer, "capturable", False):
        return f"{type(optimizer).__name__} keeps its per-step numbers in Python"
    return None


class _CudaGraph:
    """torch.cuda.CUDAGraph behind the two calls GraphedStep makes (a stand-in runs the CPU
    tests of GraphedStep's bookkeeping)."""

    def __init__(self):
        self.graph = torch.cuda.CUDAGraph()

    def capture(self, fn, *args):
        with torch.cuda.graph(self.graph):
            return fn(*args)

    def replay(self):
        self.graph.replay()

    @staticmethod
    def warmup(fn, *args):
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            out = fn(*args)
        torch.cuda.current_stream().wait_stream(stream)
        return out


class GraphedStep:
    """step(idx) -> (logits, gradient norms), eager for WARMUP steps, then a replayed graph."""

    def __init__(self, step, optimizer, device, graph_type=_CudaGraph):
        self.step, self.optimizer, self.graph_type = step, optimizer, graph_type
        self.refused = capture_refusal(optimizer, device) if graph_type is _CudaGraph else None
        self.graph = None
        self.eager_steps = 0
        self.shape = None
        if self.refused and torch.device(device).type == "cuda":
            log.info("training step not captured as a CUDA graph: %s; eager steps", self.refused)

    def __call__(self, idx: torch.Tensor):
        if self.refused or (self.shape is not None and idx.shape != self.shape):
            return self.step(idx)  # eager: no graph, or the epoch's last, partial batch
        if self.graph is not None:
            self.static_idx.copy_(idx, non_blocking=True)
            self.graph.replay()
            return self.static_z.clone(), [n.clone() for n in self.static_norms]
        self.shape = idx.shape
        if self.eager_steps < WARMUP:
            self.eager_steps += 1
            return self.graph_type.warmup(self.step, idx)
        return self._capture(idx)

    def _capture(self, idx):
        self.optimizer.on_device(idx.device)  # lr (and Adam's t) as tensors, changed in place
        self.static_idx = idx.clone()
        self.optimizer.zero_grad()  # the graph's backward makes its own gradient buffers
        graph = self.graph_type()
        try:
            self.static_z, self.static_norms = graph.capture(self.step, self.static_idx)
        except RuntimeError as exc:
            self.refused = f"capture failed ({str(exc).splitlines()[0][:120]})"
            log.info("training step not captured as a CUDA graph: %s; eager steps", self.refused)
            return self.step(idx)
        self.graph = graph
        self.graph.replay()  # a capture records the work without doing it: this step's update
        log.info("training step captured as a CUDA graph after %d eager steps", WARMUP)
        return self.static_z.clone(), [n.clone() for n in self.static_norms]
