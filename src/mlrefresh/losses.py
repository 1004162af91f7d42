"""The three losses of the lecture, each a torch.autograd.Function with a hand-written backward.

| function           | takes                              | gradient returned by backward |
|--------------------|------------------------------------|-------------------------------|
| square_loss(y, t)  | outputs y, targets (0/1 or 1-hot)  | (y - t) / N                   |
| bernoulli_ce(z, t) | logits z [N], 0/1 targets          | (sigmoid(z) - t) / N          |
| softmax_ce(z, t)   | logits z [N, K], class indices [N] | (softmax(z) - onehot(t)) / N  |

Cross-entropy is always computed from the logits (softplus / log-sum-exp), never as
log(sigmoid(z)): a probability that underflows to 0 has a log of -inf. Square loss works on
the output unit's y, so autograd's chain rule through the unit adds the saturation factor.

Each per-sample gradient dL_i/dz_i is written once (`square_dy`, `bernoulli_dz`, `softmax_dz`)
and used by the backward and jvp; the diagnostics read it through the backward itself
(diagnostics.per_sample_dz). Second derivatives (create_graph=True, a Hessian, a gradient
penalty) are exact: the backward then runs the same formula out of place, in differentiable
operations; `generate_vmap_rule = True` gives `torch.func.vmap`, `jacrev`, `hessian`; `jvp`
gives forward mode (`torch.func.jvp`, `jacfwd`). How the Functions run fast, and under the
compiler, is loss_plumbing.py's business (measured there).

Adding a loss: a Function and its wrapper here, an entry in LOSSES (the bottom of this file:
what it is computed on, which output units it pairs with, the targets it takes), and
configs/loss/<name>.yaml. Nothing else changes.

Example:
    >>> import torch
    >>> from mlrefresh.losses import softmax_ce
    >>> z = torch.zeros(4, 3, requires_grad=True)
    >>> loss = softmax_ce(z, torch.tensor([0, 1, 2, 0]))
    >>> round(loss.item(), 4)  # log 3
    1.0986
    >>> loss.backward()  # z.grad == (softmax(z) - onehot(t)) / 4

Each wrapper checks shapes (free) and, unless `check=False`, the target values (one host
sync; the training loop, whose labels were checked at loading, passes `check=False`). Under
torch.compile and torch.func the value checks are skipped; shapes are still checked.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mlrefresh import loss_plumbing as plumbing

__all__ = [
    "LOSSES", "Loss", "square_loss", "bernoulli_ce", "softmax_ce", "bernoulli_ce_grad",
    "softmax_ce_grad",
    "SquareLoss", "BernoulliCE", "SoftmaxCE",
]  # fmt: skip

# --- the lecture's derivatives, per sample, not yet divided by N ------------------------------


def square_dy(y, t):
    """d/dy of 1/2 (y - t)^2: y - t."""
    return y - t


def bernoulli_dz(z, t, in_place=False):
    """d/dz of softplus(z) - t z: sigmoid(z) - t."""
    y = torch.sigmoid(z)
    return y.sub_(t) if in_place else y - t


def softmax_dz(p, t, in_place=False):
    """d/dz of -log softmax(z)[t], from p = softmax(z): p - onehot(t)."""
    minus_onehot = plumbing.minus_ones(p, p.shape[0])
    if in_place:
        return p.scatter_add_(1, t.unsqueeze(1), minus_onehot)
    return p.scatter_add(1, t.unsqueeze(1), minus_onehot.to(p.dtype))


def bernoulli_ce_grad(z, t, scale=None):
    """d bernoulli_ce(z, t) / dz, without the loss: (sigmoid(z) - t) / N, as BernoulliCE's
    backward computes it (scale: its grad / N; None: 1 / N). What a training step needs."""
    return bernoulli_dz(z, t, in_place=True).mul_(1.0 / z.shape[0] if scale is None else scale)


def softmax_ce_grad(z, t, scale=None, log_p=None):
    """d softmax_ce(z, t) / dz, without the loss: (softmax(z) - onehot(t)) / N, as SoftmaxCE's
    backward computes it, from the forward's log_p (or computed here) and scale (as above)."""
    log_p = plumbing.log_softmax(z) if log_p is None else log_p
    scale = 1.0 / z.shape[0] if scale is None else scale
    return softmax_dz(log_p.exp(), t, in_place=True).mul_(scale)


# --- the three Functions: forward and backward side by side -----------------------------------


class SquareLoss(torch.autograd.Function):
    """L = 1/N sum_i 1/2 |y_i - t_i|^2;  dL/dy_i = (y_i - t_i) / N."""

    generate_vmap_rule = True

    @staticmethod
    def forward(y, t):
        # torch's sum adds in a cascade (as mse_loss does): a float32 dot product of N*K terms
        # lost 1e-3 of the loss at 60000x1000
        return (y - t).square().sum() * (0.5 / y.shape[0])

    @staticmethod
    def backward(ctx, grad):
        y, t = ctx.saved_tensors
        scale, dy = grad / y.shape[0], square_dy(y, t)
        dy = dy.mul_(scale) if plumbing.in_place_ok(grad) else dy * scale  # (y - t) / N
        return dy, (-dy if ctx.needs_input_grad[1] else None)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def jvp(ctx, y_dot, t_dot):
        y, t = ctx.saved_tensors
        tangent = y_dot if t_dot is None else y_dot - t_dot
        return (square_dy(y, t) * tangent).sum() / y.shape[0]


class BernoulliCE(torch.autograd.Function):
    """L = 1/N sum_i -t_i log sigmoid(z_i) - (1 - t_i) log(1 - sigmoid(z_i))
    = 1/N sum_i softplus(z_i) - t_i z_i;  dL/dz_i = (sigmoid(z_i) - t_i) / N."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z, t):
        # softplus(z) - t z, never the log of an underflowed probability: finite for z = +-1000.
        # Written as (1 - t) z + max(-z, 0) + log(1 + e^-|z|), as PyTorch's BCE-with-logits is:
        # softplus(z) - z would cancel to exactly 0 for t = 1 and z > 20 (the loss is e^-z > 0
        # there), and t z is nan for t = 0, z = +inf (the loss is +inf).
        return torch.addcmul(F.relu(-z) + torch.log1p(torch.exp(-z.abs())), 1 - t, z).mean()

    @staticmethod
    def backward(ctx, grad):
        z, t = ctx.saved_tensors
        scale, fast = grad / z.shape[0], plumbing.in_place_ok(grad)
        dz = bernoulli_ce_grad(z, t, scale) if fast else bernoulli_dz(z, t) * scale
        return dz, (-z * scale if ctx.needs_input_grad[1] else None)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def jvp(ctx, z_dot, t_dot):
        z, t = ctx.saved_tensors
        tangent = (bernoulli_dz(z, t) * z_dot).sum()
        if t_dot is not None:
            tangent = tangent - (z * t_dot).sum()
        return tangent / z.shape[0]


class SoftmaxCE(torch.autograd.Function):
    """L = 1/N sum_i -log softmax(z_i)[t_i], with log softmax(z) = z - logsumexp(z);
    dL/dz_i = (softmax(z_i) - onehot(t_i)) / N. The forward also returns log softmax(z)
    (not differentiable), from which the backward gets softmax(z) = exp(log softmax(z))."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z, t):
        log_p = plumbing.log_softmax(z)
        return F.nll_loss(log_p, t), log_p  # nll_loss: the fused "-mean of log_p[i, t_i]"

    @staticmethod
    def backward(ctx, grad, _grad_log_p):
        z, log_p, t = ctx.saved_tensors
        if plumbing.in_place_ok(grad):
            return softmax_ce_grad(z, t, grad / z.shape[0], log_p), None
        # create_graph, transforms: softmax recomputed from z, so that it can be differentiated
        return softmax_dz(plumbing.softmax(z), t) * (grad / z.shape[0]), None

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, t = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(z, output[1], t)
        ctx.save_for_forward(output[1], t)

    @staticmethod
    def jvp(ctx, z_dot, t_dot):
        log_p, t = ctx.saved_tensors
        return (softmax_dz(log_p.exp(), t) * z_dot).sum() / log_p.shape[0], None


# --- the functions a user calls: shapes checked, then the Function ----------------------------


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
    plumbing.check_batch("square_loss", y)
    return plumbing.apply(SquareLoss, _SQUARE_LOSS, y, t.to(y.dtype))


def bernoulli_ce(z: torch.Tensor, t: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Bernoulli cross-entropy from logits z [N] and 0/1 targets t [N] (float, int or bool)."""
    if z.dim() != 1 or z.shape != t.shape:
        raise ValueError(
            f"bernoulli_ce: logits have shape {tuple(z.shape)} and targets {tuple(t.shape)}; "
            "both must be [N] (use softmax_ce for [N, K] logits)"
        )
    plumbing.check_batch("bernoulli_ce", z)
    t = t.to(z.dtype)
    if check and plumbing.any_set(lambda: (t != 0) & (t != 1)):
        bad = t[(t != 0) & (t != 1)][0].item()
        raise ValueError(f"bernoulli_ce: targets must be 0 or 1, found {bad}")
    return plumbing.apply(BernoulliCE, _BERNOULLI_CE, z, t)


def softmax_ce(z: torch.Tensor, t: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Softmax cross-entropy from logits z [N, K] and int64 class indices t [N]."""
    if z.dim() != 2 or t.dim() != 1 or z.shape[0] != t.shape[0]:
        raise ValueError(
            f"softmax_ce: logits have shape {tuple(z.shape)} and targets {tuple(t.shape)}; "
            "expected logits [N, K] and class indices [N]"
        )
    if t.dtype != torch.int64:
        raise ValueError(f"softmax_ce: targets must be int64 class indices, got {t.dtype}")
    plumbing.check_batch("softmax_ce", z)
    k = z.shape[1]
    if check and plumbing.any_set(lambda: (t < 0) | (t >= k)):
        bad = t[(t < 0) | (t >= k)][0].item()
        raise ValueError(f"softmax_ce: class index {bad} is outside [0, {k}) for K={k} logits")
    return plumbing.apply(SoftmaxCE, _SOFTMAX_CE, z, t)[0]


@dataclass(frozen=True)
class Loss:
    """A loss as configs/loss/<name>.yaml names it: the function for one-output models (t 0/1)
    and for K-output models; from the logits z or the unit's output y; the units it pairs with
    (None: every unit); K-output targets one-hot or class indices; whether it is the NLL; and,
    for a loss on the logits, its gradient dL/dz without the loss value (a training step's)."""

    binary: object  # f(z or y [N], t [N])
    multi: object  # f(z or y [N, K], t)
    on_logits: bool
    units: frozenset | None
    one_hot: bool
    is_nll: bool
    grads: tuple | None = None  # (g(z [N], t), g(z [N, K], t)) -> dL/dz, or None


LOSSES = {
    "square": Loss(square_loss, square_loss, on_logits=False, units=None, one_hot=True,
                   is_nll=False),
    "ce": Loss(bernoulli_ce, softmax_ce, on_logits=True, units=frozenset({"sigmoid", "softmax"}),
               one_hot=False, is_nll=True, grads=(bernoulli_ce_grad, softmax_ce_grad)),
}  # fmt: skip


# torch.compile's copies of the Functions (loss_plumbing.without_jvp)
_SQUARE_LOSS, _BERNOULLI_CE, _SOFTMAX_CE = map(plumbing.without_jvp, (SquareLoss, BernoulliCE,
                                                                       SoftmaxCE))  # fmt: skip
