"""What lies under losses.py's formulas: exact numerics, the wrappers' checks, the compiler,
and a Function's backward called on its own.

Nothing here changes what a formula says; it decides how the formula is computed:

- `softplus`, `log_softmax`, `softmax`, `onehot`: the lecture's functions, exact for any logits
  (no e^z that overflows, no log of a probability that underflowed); fp16/bf16 in float32.
- `check_batch`, `any_set`: the wrappers' shape and value checks.
- `apply`: a Function's apply, or, while torch.compile traces, its copy without the
  forward-mode rule (`without_jvp`: Dynamo does not trace a Function with a custom jvp).
- `backward_alone`: the gradient a loss Function's own backward returns, called without
  autograd's graph: what the written-out step of a linear model trains by (epoch.linear_step).
  The same call autograd makes, minus its bookkeeping: on the 2-core CPU machine, one thread,
  softmax CE's dL/dz at 128 x 10 takes 36-39 us this way against 200 us through
  torch.autograd.grad (forward, graph, backward; 2026-12-06, `python scripts/bench.py losses`).

Example:
    >>> import torch
    >>> from mlrefresh.loss_plumbing import log_softmax
    >>> log_softmax(torch.zeros(2, 4)).exp().sum(1).tolist()
    [1.0, 1.0]
"""

import functools

import torch
import torch.nn.functional as F

__all__ = ["any_set", "apply", "backward_alone", "check_batch", "log_softmax", "onehot",
           "softmax", "softplus", "without_jvp"]  # fmt: skip

LOW_PRECISION = (torch.float16, torch.bfloat16)


def softplus(z: torch.Tensor) -> torch.Tensor:
    """log(1 + e^z) = max(z, 0) + log(1 + e^-|z|): e^z itself overflows for z > 88 (float32),
    and torch's softplus returns z unchanged above 20, dropping the e^-z that remains."""
    return F.relu(z) + torch.log1p(torch.exp(-z.abs()))


def log_softmax(z: torch.Tensor) -> torch.Tensor:
    """log softmax(z) over dim 1, exact for any logits (max-shifted: z - max - log sum e^(z-max)),
    by torch's fused kernel: in torch 2.13 it gives every row the same bits whatever the number
    of rows and the layout (so M stacked jobs, sweeps/, round as each job alone;
    tests/test_losses.py checks it) and is faster than the formula written out in elementwise
    kernels at every size (one thread, 2026-12-06: 6 against 20 us at 128 x 10, 48 against 81 at
    1536 x 10, 1.8 against 5.5 ms at 60000 x 10). Tied logits of 1e7 give log 2. fp16/bf16
    logits are computed in float32 and rounded once."""
    if z.dtype in LOW_PRECISION:
        return log_softmax(z.float()).to(z.dtype)
    return torch.log_softmax(z, dim=1)


def softmax(z: torch.Tensor) -> torch.Tensor:
    """softmax(z) over dim 1, exact for any logits (max-shifted), by torch's fused kernel: the
    same bits for a row whatever the number of rows (as log_softmax), and not exp(log_softmax(z)),
    which takes a kernel more (softmax CE's dL/dz at 128 x 10 by the written-out formula took
    26 us, the fused kernel 16). fp16/bf16 in float32, rounded once."""
    if z.dtype in LOW_PRECISION:
        return softmax(z.float()).to(z.dtype)
    return torch.softmax(z, dim=1)


def onehot(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Rows of `like`'s shape and dtype, 1 at the class index t_i, 0 elsewhere: the rows t_i of
    the identity matrix, picked by one index_select (3.4 us at 128 x 10, one CPU thread; zeros
    then scatter take 7.3). Not F.one_hot, which checks the indices (a host sync in every step,
    none under a CUDA graph) and makes int64 rows to convert (15 us)."""
    k = like.shape[1]
    if torch.compiler.is_compiling():  # a constant of the graph (Dynamo skips the cache)
        return torch.eye(k, dtype=like.dtype, device=like.device)[t]
    return torch.index_select(_identity(k, like.dtype, like.device), 0, t)


@functools.cache
def _identity(k: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The K x K identity matrix, made once for each size, dtype and device (a normal tensor,
    also when first asked for in inference mode: autograd may meet it later)."""
    with torch.inference_mode(False):
        return torch.eye(k, dtype=dtype, device=device)


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
    """function.apply(*args); its copy without jvp while torch.compile traces."""
    return (for_compile if torch.compiler.is_compiling() else function).apply(*args)


class _Inputs:
    """What a loss Function's backward reads from its context when it is called on its own:
    what the Function's setup_context saved (it saves its inputs), and which inputs need a
    gradient (the logits, not the targets)."""

    needs_input_grad = (True, False)

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors

    def save_for_forward(self, *tensors):
        pass

    def mark_non_differentiable(self, *tensors):
        pass


def backward_alone(function, z: torch.Tensor, t: torch.Tensor, grad: torch.Tensor):
    """dL/dz for the loss Function `function` at logits z and targets t, times the upstream
    gradient grad (a 0-dim tensor: 1 for the loss itself), by the Function's own setup_context
    and backward, as autograd would call them, but without a graph and without the loss value
    (the step does not need it). A Function whose backward reads its forward's output cannot
    be called so (its setup_context gets output=None)."""
    ctx = _Inputs()
    function.setup_context(ctx, (z, t), None)
    return function.backward(ctx, grad)[0]
