"""The plumbing under losses.py's formulas: speed, numerics, checks, the compiler.

Nothing here changes a number the lecture's formulas give; it decides how they run:

- `apply`: a Function's apply through the C++ path. torch 2.13's Python-side apply calls
  inspect.signature on every call for a Function with setup_context (pytorch#189573). Measured
  on the 2-core CPU machine, one thread, a Fashion-MNIST step (forward, softmax CE, backward):
  30 us of 200 us, about 7% of an epoch (the two versions side by side in one process,
  2026-12-02; `python scripts/bench.py losses` shows the per-call cost). Under torch.compile
  the Function's copy without jvp runs (Dynamo does not trace a custom jvp); under torch.func
  transforms, the Python apply.
- `in_place_ok`: the backward scales its own fresh temporaries in place (and softmax CE reuses
  the forward's log-probabilities) where that is safe: not with create_graph=True, not under
  torch.func transforms or the older vmap of gradcheck. Measured as above: 22 us of a step,
  about 5% of an epoch.
- `log_softmax`, `softmax`: exact for any logits, fp16/bf16 computed in float32.
- `check_batch`, `any_set`: the wrappers' shape and value checks.

Example:
    >>> import torch
    >>> from mlrefresh.loss_plumbing import log_softmax
    >>> log_softmax(torch.zeros(2, 4)).exp().sum(1).tolist()
    [1.0, 1.0]
"""

import functools

import torch

__all__ = ["apply", "any_set", "check_batch", "in_place_ok", "log_softmax", "minus_ones",
           "softmax", "without_jvp"]  # fmt: skip

LOW_PRECISION = (torch.float16, torch.bfloat16)


def in_place_ok(grad=None) -> bool:
    """Whether a backward may update its own temporaries in place (see the module docstring);
    elsewhere the same formula runs out of place, in differentiable operations."""
    return not (
        torch.compiler.is_compiling()  # the compiler fuses the out-of-place form anyway
        or torch.is_grad_enabled()  # create_graph=True: the backward is differentiated
        or torch._C._are_functorch_transforms_active()
        or (grad is not None and torch._C._functorch.is_legacy_batchedtensor(grad))
    )


@functools.cache
def _cached_minus_one(device, dtype):
    return torch.full((1, 1), -1.0, device=device, dtype=dtype)


def minus_ones(like, n):
    """An [n, 1] column of -1 to subtract a one-hot: in eager mode a cached [1, 1] tensor,
    expanded (not copied), one kernel launch less per backward than a freshly filled column."""
    if not in_place_ok():
        return like.new_full((n, 1), -1.0)
    return _cached_minus_one(like.device, like.dtype).expand(n, 1)


def softmax(z):
    """softmax over dim 1; fp16/bf16 computed in float32 and rounded once."""
    low = z.dtype in LOW_PRECISION
    return torch.softmax(z.float() if low else z, dim=1).to(z.dtype)


def log_softmax(z):
    """log softmax(z) over dim 1, exact for any logits (max-shifted: z - max - log sum e^(z-max)).

    On the CPU the formula is written out in elementwise kernels: torch.log_softmax's fused CPU
    kernel is as fast for a mini-batch (18 us at 128 x 10) but 3.5-5x slower for many rows of
    few classes (181 against 51 us at 1536 x 10: a stack of 12 jobs' step; 5 ms against 1 ms at
    60000 x 10: an epoch's metrics), and the written-out form gives every row the same bits
    whatever the number of rows, so M stacked jobs (sweeps/) round as each job alone. Elsewhere
    the fused kernel. Tied logits of 1e7 give log 2 at any batch size. fp16/bf16 logits are
    computed in float32 and rounded once.
    """
    if z.dtype in LOW_PRECISION:
        return log_softmax(z.float()).to(z.dtype)
    if z.device.type == "cpu":  # rows in memory order: a row's sums do not depend on layout
        z = z.contiguous()
        shifted = z - z.amax(dim=1, keepdim=True)
        return shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    return torch.log_softmax(z, dim=1)


def check_batch(name, pred) -> None:
    """Empty or integer predictions: one readable line."""
    if pred.shape[0] == 0:
        raise ValueError(f"{name}: empty batch (0 samples); pass at least one sample")
    if not pred.is_floating_point():
        raise ValueError(f"{name}: predictions must be floating point, got {pred.dtype}")


def any_set(bad) -> bool:
    """Whether any element of bad() is set: a value check, which reads the data (a host sync).
    Skipped while torch.compile traces, and under torch.func.vmap, which refuses
    data-dependent control flow (a RuntimeError: its tensors are stand-ins)."""
    if torch.compiler.is_compiling():
        return False
    try:
        return bool(bad().any())
    except RuntimeError:
        return False


def without_jvp(function: type) -> type:
    """The Function minus its forward-mode rule, for torch.compile: Dynamo does not trace a
    Function with a custom jvp (a graph break, an error under fullgraph=True)."""
    return type(function.__name__, (function,), {"jvp": torch.autograd.Function.jvp})


def apply(function, for_compile, *args):
    """function.apply(*args), through the C++ apply where that is safe (module docstring)."""
    if torch.compiler.is_compiling():
        return for_compile.apply(*args)
    if torch._C._are_functorch_transforms_active():
        return function.apply(*args)
    return super(torch.autograd.Function, function).apply(*args)
