"""The three losses of the lecture, each a torch.autograd.Function with a hand-written backward.

| function           | takes                              | gradient returned by backward |
|--------------------|------------------------------------|-------------------------------|
| square_loss(y, t)  | outputs y, targets (0/1 or 1-hot)  | (y - t) / N                   |
| bernoulli_ce(z, t) | logits z [N], 0/1 targets          | (sigmoid(z) - t) / N          |
| softmax_ce(z, t)   | logits z [N, K], class indices [N] | (softmax(z) - onehot(t)) / N  |

Cross-entropy is always computed from the logits (softplus / log-sum-exp), never as
log(sigmoid(z)): a probability that underflows to 0 has a log of -inf. Square loss works on
the output unit's y, so autograd's chain rule through the unit adds the saturation factor.

Example:
    >>> import torch
    >>> from mlrefresh.losses import softmax_ce
    >>> z = torch.zeros(4, 3, requires_grad=True)
    >>> loss = softmax_ce(z, torch.tensor([0, 1, 2, 0]))
    >>> round(loss.item(), 4)  # log 3
    1.0986
    >>> loss.backward()  # z.grad == (softmax(z) - onehot(t)) / 4

Each wrapper checks shapes (free) and, unless `check=False`, the target values (one host
sync). The training loop validates labels once when the data is loaded and passes
`check=False`, so its step loop never waits on the device. Under torch.compile the value
checks are skipped (they would break the graph); shapes are still checked.
"""

import functools

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["square_loss", "bernoulli_ce", "softmax_ce", "SquareLoss", "BernoulliCE", "SoftmaxCE"]


def _first_order(backward):
    """What once_differentiable guarantees (a second derivative raises instead of being silently
    wrong), without its cost on the usual path: backward runs with grad mode off unless the
    caller asked for create_graph=True, and only then is once_differentiable's wrapper used."""
    guarded = once_differentiable(backward)

    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        if torch.is_grad_enabled():
            return guarded(ctx, *grads)
        return backward(ctx, *grads)

    return wrapper


@functools.cache
def _cached_minus_one(device, dtype):
    return torch.full((1, 1), -1.0, device=device, dtype=dtype)


def _minus_ones(like, n):
    """An [n, 1] column of -1 to subtract a one-hot: in eager mode a cached [1, 1] tensor,
    expanded (not copied), one kernel launch less per backward than a freshly filled column."""
    if torch.compiler.is_compiling():
        return like.new_full((n, 1), -1.0)
    return _cached_minus_one(like.device, like.dtype).expand(n, 1)


def _log_softmax(z):
    """log softmax(z) over dim 1. torch.log_softmax is one fused kernel, the fastest choice for
    a mini-batch; but for many rows of few classes its CPU kernel is about 5x slower than
    z - logsumexp(z) (K=10: 5 ms against 1 ms at N=60000), so large CPU inputs take that form."""
    if z.shape[0] >= 1024 and z.device.type == "cpu":
        return z - torch.logsumexp(z, dim=1, keepdim=True)
    return torch.log_softmax(z, dim=1)


class SquareLoss(torch.autograd.Function):
    """1/2 (y - t)^2, summed over the output dimension, mean over the N samples."""

    @staticmethod
    def forward(y, t):
        diff = y - t
        return torch.linalg.vecdot(diff.reshape(-1), diff.reshape(-1)) * (0.5 / y.shape[0])

    @staticmethod
    def setup_context(ctx, inputs, output):
        y, t = inputs
        ctx.save_for_backward(y, t)

    @staticmethod
    @_first_order
    def backward(ctx, grad):
        y, t = ctx.saved_tensors
        scale = grad / y.shape[0]
        dy = (y - t).mul_(scale)  # d/dy of 1/2 (y - t)^2 / N
        dt = -dy if ctx.needs_input_grad[1] else None
        return dy, dt


class BernoulliCE(torch.autograd.Function):
    """-t log sigmoid(z) - (1 - t) log(1 - sigmoid(z)) = softplus(z) - t z, mean over samples."""

    @staticmethod
    def forward(z, t):
        # -t log y - (1-t) log(1-y) with y = sigmoid(z) is softplus(z) - t z, where
        # softplus(z) = log(1 + e^z) never takes the log of an underflowed probability: the
        # loss stays finite for z = +-1000. (F.softplus returns z itself above z = 20, where
        # log(1 + e^z) - z < 3e-9.)
        return torch.addcmul(F.softplus(z), t, z, value=-1.0).mean()

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, t = inputs
        ctx.save_for_backward(z, t)

    @staticmethod
    @_first_order
    def backward(ctx, grad):
        z, t = ctx.saved_tensors
        scale = grad / z.shape[0]
        dz = torch.sigmoid(z).sub_(t).mul_(scale)  # (sigmoid(z) - t) / N
        dt = (-z * scale) if ctx.needs_input_grad[1] else None
        return dz, dt


class SoftmaxCE(torch.autograd.Function):
    """-log softmax(z)[t], mean over samples; log softmax(z) = z - logsumexp(z)."""

    @staticmethod
    def forward(z, t):
        log_p = _log_softmax(z)
        return F.nll_loss(log_p, t), log_p  # nll_loss: the fused "-mean of log_p[i, t_i]"

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, t = inputs
        _, log_p = output
        ctx.mark_non_differentiable(log_p)
        ctx.save_for_backward(log_p, t)

    @staticmethod
    @_first_order
    def backward(ctx, grad, _grad_log_p):
        log_p, t = ctx.saved_tensors
        n = log_p.shape[0]
        dz = log_p.exp()  # softmax(z)
        dz.scatter_add_(1, t.unsqueeze(1), _minus_ones(dz, n))  # - onehot(t)
        return dz.mul_(grad / n), None  # (softmax(z) - onehot(t)) / N


def _apply(function, *args):
    """function.apply(*args), minus the inspect.signature call that torch 2.13's Python-side
    apply makes on every call for Functions with setup_context (about 15 us, pytorch#189573).

    The C++ apply underneath does the real work (setup_context included); the Python wrapper is
    kept where it matters: under torch.compile and under functorch transforms (vmap, grad).
    """
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return function.apply(*args)
    return super(torch.autograd.Function, function).apply(*args)


def _check_batch(name, pred):
    if pred.shape[0] == 0:
        raise ValueError(f"{name}: empty batch (0 samples); pass at least one sample")
    if not pred.is_floating_point():
        raise ValueError(f"{name}: predictions must be floating point, got {pred.dtype}")


def square_loss(y: torch.Tensor, t: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Square loss on outputs y [N] or [N, K] against targets t of the same shape.

    Integer or bool targets are converted to y's dtype (t=1 -> 1.0). Any real target is valid
    for square loss, so `check` (kept for a uniform signature) has no values to check.
    """
    if y.shape != t.shape:
        raise ValueError(
            f"square_loss: outputs have shape {tuple(y.shape)} but targets {tuple(t.shape)}; "
            "they must match (one-hot encode class indices for K outputs)"
        )
    if y.dim() not in (1, 2):
        raise ValueError(f"square_loss: outputs must be [N] or [N, K], got {tuple(y.shape)}")
    _check_batch("square_loss", y)
    return _apply(SquareLoss, y, t.to(y.dtype))


def bernoulli_ce(z: torch.Tensor, t: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Bernoulli cross-entropy from logits z [N] and 0/1 targets t [N] (float, int or bool)."""
    if z.dim() != 1 or z.shape != t.shape:
        raise ValueError(
            f"bernoulli_ce: logits have shape {tuple(z.shape)} and targets {tuple(t.shape)}; "
            "both must be [N] (use softmax_ce for [N, K] logits)"
        )
    _check_batch("bernoulli_ce", z)
    t = t.to(z.dtype)
    if check and not torch.compiler.is_compiling() and bool(((t != 0) & (t != 1)).any()):
        bad = t[(t != 0) & (t != 1)][0].item()
        raise ValueError(f"bernoulli_ce: targets must be 0 or 1, found {bad}")
    return _apply(BernoulliCE, z, t)


def softmax_ce(z: torch.Tensor, t: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Softmax cross-entropy from logits z [N, K] and int64 class indices t [N]."""
    if z.dim() != 2 or t.dim() != 1 or z.shape[0] != t.shape[0]:
        raise ValueError(
            f"softmax_ce: logits have shape {tuple(z.shape)} and targets {tuple(t.shape)}; "
            "expected logits [N, K] and class indices [N]"
        )
    if t.dtype != torch.int64:
        raise ValueError(f"softmax_ce: targets must be int64 class indices, got {t.dtype}")
    _check_batch("softmax_ce", z)
    k = z.shape[1]
    if check and not torch.compiler.is_compiling() and bool(((t < 0) | (t >= k)).any()):
        bad = t[(t < 0) | (t >= k)][0].item()
        raise ValueError(f"softmax_ce: class index {bad} is outside [0, {k}) for K={k} logits")
    return _apply(SoftmaxCE, z, t)[0]
