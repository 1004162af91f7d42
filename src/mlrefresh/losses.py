"""The three losses of the lecture, each a torch.autograd.Function with a hand-written backward.

| function           | takes                              | gradient returned by backward |
|--------------------|------------------------------------|-------------------------------|
| square_loss(y, t)  | outputs y, targets (0/1 or 1-hot)  | (y - t) / N                   |
| bernoulli_ce(z, t) | logits z [N], 0/1 targets          | (sigmoid(z) - t) / N          |
| softmax_ce(z, t)   | logits z [N, K], class indices [N] | (softmax(z) - onehot(t)) / N  |

Each loss is written as the lecture writes it, top to bottom: the per-sample derivative in one
line (`square_dy`, `bernoulli_dz`, `softmax_dz`), then the Function: its forward (the loss),
its backward (that derivative, divided by N), its forward-mode rule. That backward is what
trains every model: autograd calls it for any model (and carries it through the output unit),
the written-out step of a linear model calls it directly (loss_plumbing.backward_alone), and
the diagnostics read dL_i/dz_i through it. Edit a derivative and training changes
(tests/test_derivatives.py).

Cross-entropy is always computed from the logits (softplus / log-sum-exp), never as
log(sigmoid(z)): a probability that underflows to 0 has a log of -inf. Square loss works on
the output unit's y, so autograd's chain rule through the unit adds the saturation factor:
through a sigmoid, dL/dz_i = (y_i - t_i) y_i (1 - y_i) / N, the lecture's "small when the
unit saturates, however wrong y is".

The backward is made of differentiable operations, so second derivatives (create_graph=True,
a Hessian, a gradient penalty) are exact; `generate_vmap_rule = True` gives `torch.func.vmap`,
`jacrev`, `hessian`; `jvp` gives forward mode (`torch.func.jvp`, `jacfwd`). The exact
numerics (softplus, log-softmax), the checks and the compiler's copy are loss_plumbing.py's.

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
from mlrefresh.loss_plumbing import log_softmax, onehot, softmax, softplus

__all__ = [
    "LOSSES", "Loss", "square_loss", "bernoulli_ce", "softmax_ce", "square_dy", "bernoulli_dz",
    "softmax_dz", "SquareLoss", "BernoulliCE", "SoftmaxCE",
]  # fmt: skip


# --- square loss ------------------------------------------------------------------------------


def square_dy(y, t):
    """dL_i/dy_i of L_i = 1/2 |y_i - t_i|^2."""
    return y - t


class SquareLoss(torch.autograd.Function):
    """L = 1/N sum_i 1/2 |y_i - t_i|^2;  dL/dy_i = (y_i - t_i) / N. Through a sigmoid unit
    y = sigmoid(z), autograd's chain rule makes it dL/dz_i = (y_i - t_i) y_i (1 - y_i) / N."""

    generate_vmap_rule = True

    @staticmethod
    def forward(y, t):
        # torch's sum adds in a cascade (as mse_loss does): a float32 dot product of N*K terms
        # lost 1e-3 of the loss at 60000x1000
        return (y - t).square().sum() * (0.5 / y.shape[0])

    @staticmethod
    def backward(ctx, grad):
        y, t = ctx.saved_tensors
        dy = square_dy(y, t) * (grad / y.shape[0])
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


# --- Bernoulli cross-entropy (logistic regression) --------------------------------------------


def bernoulli_dz(z, t):
    """dL_i/dz_i of L_i = softplus(z_i) - t_i z_i."""
    return torch.sigmoid(z) - t


class BernoulliCE(torch.autograd.Function):
    """L = 1/N sum_i -t_i log sigmoid(z_i) - (1 - t_i) log(1 - sigmoid(z_i))
    = 1/N sum_i softplus(z_i) - t_i z_i;  dL/dz_i = (sigmoid(z_i) - t_i) / N."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z, t):
        # softplus(z) - t z, computed as softplus(-z) + (1 - t) z, the same number
        # (softplus(z) = z + softplus(-z)), as PyTorch's BCE-with-logits computes it:
        # softplus(z) - z would cancel to exactly 0 for t = 1 and z > 20 (the loss is e^-z > 0
        # there), and t z is nan for t = 0, z = +inf (the loss is +inf)
        return torch.addcmul(softplus(-z), 1 - t, z).mean()

    @staticmethod
    def backward(ctx, grad):
        z, t = ctx.saved_tensors
        scale = grad / z.shape[0]
        return bernoulli_dz(z, t) * scale, (-z * scale if ctx.needs_input_grad[1] else None)

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


# --- softmax cross-entropy (softmax regression) -----------------------------------------------


def softmax_dz(z, t):
    """dL_i/dz_i of L_i = -log softmax(z_i)[t_i]."""
    return softmax(z) - onehot(t, like=z)


class SoftmaxCE(torch.autograd.Function):
    """L = 1/N sum_i -log softmax(z_i)[t_i], with log softmax(z) = z - logsumexp(z);
    dL/dz_i = (softmax(z_i) - onehot(t_i)) / N."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z, t):
        # log softmax(z) = z - logsumexp(z), never the log of a softmax that underflowed;
        # nll_loss: the fused "-mean over i of log_p[i, t_i]"
        return F.nll_loss(log_softmax(z), t)

    @staticmethod
    def backward(ctx, grad):
        z, t = ctx.saved_tensors
        return softmax_dz(z, t) * (grad / z.shape[0]), None

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def jvp(ctx, z_dot, t_dot):
        z, t = ctx.saved_tensors
        return (softmax_dz(z, t) * z_dot).sum() / z.shape[0]


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
    return plumbing.apply(SoftmaxCE, _SOFTMAX_CE, z, t)


@dataclass(frozen=True)
class Loss:
    """A loss as configs/loss/<name>.yaml names it: the function for one-output models (t 0/1)
    and for K-output models; from the logits z or the unit's output y; the units it pairs with
    (None: every unit); K-output targets one-hot or class indices; whether it is the NLL; and,
    for a loss on the logits, its two Functions, whose backward the written-out step of a
    linear model calls on its own (loss_plumbing.backward_alone)."""

    binary: object  # f(z or y [N], t [N])
    multi: object  # f(z or y [N, K], t)
    on_logits: bool
    units: frozenset | None
    one_hot: bool
    is_nll: bool
    functions: tuple | None = None  # (Function of z [N], Function of z [N, K]), or None


LOSSES = {
    "square": Loss(square_loss, square_loss, on_logits=False, units=None, one_hot=True,
                   is_nll=False),
    "ce": Loss(bernoulli_ce, softmax_ce, on_logits=True, units=frozenset({"sigmoid", "softmax"}),
               one_hot=False, is_nll=True, functions=(BernoulliCE, SoftmaxCE)),
}  # fmt: skip


# torch.compile's copies of the Functions (loss_plumbing.without_jvp)
_SQUARE_LOSS, _BERNOULLI_CE, _SOFTMAX_CE = map(plumbing.without_jvp, (SquareLoss, BernoulliCE,
                                                                       SoftmaxCE))  # fmt: skip
