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

Each Function also works under every autograd feature PyTorch's own losses do: second
derivatives (create_graph=True, `torch.autograd.functional.hessian`, a gradient penalty) are
exact because the backward then runs the same formula out of place, in differentiable
operations; `generate_vmap_rule = True` gives `torch.func.vmap` (per-sample gradients),
`jacrev`, `hessian` and batched gradients; `jvp` gives forward mode (`torch.func.jvp`, `jacfwd`).
"""

import functools

import torch
import torch.nn.functional as F

__all__ = [
    "square_loss", "bernoulli_ce", "softmax_ce", "sample_grad",
    "SquareLoss", "BernoulliCE", "SoftmaxCE",
]  # fmt: skip

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _in_place_ok(grad=None) -> bool:
    """In-place updates of the backward's own temporaries save an allocation; they are safe
    only on the plain path. With create_graph=True (a second derivative: the backward must
    itself be differentiable), under torch.func transforms, and when the incoming gradient is
    batched by the older vmap that gradcheck's batched check and jacobian(vectorize=True) use,
    the same formula runs out of place."""
    return not (
        torch.compiler.is_compiling()  # the compiler fuses the out-of-place form anyway
        or torch.is_grad_enabled()
        or torch._C._are_functorch_transforms_active()
        or (grad is not None and torch._C._functorch.is_legacy_batchedtensor(grad))
    )


@functools.cache
def _cached_minus_one(device, dtype):
    return torch.full((1, 1), -1.0, device=device, dtype=dtype)


def _minus_ones(like, n):
    """An [n, 1] column of -1 to subtract a one-hot: in eager mode a cached [1, 1] tensor,
    expanded (not copied), one kernel launch less per backward than a freshly filled column."""
    if torch.compiler.is_compiling() or not _in_place_ok():
        return like.new_full((n, 1), -1.0)
    return _cached_minus_one(like.device, like.dtype).expand(n, 1)


def _log_softmax(z):
    """log softmax(z) over dim 1, exact for any logits (max-shifted: z - max - log sum e^(z-max)).

    torch.log_softmax is one fused kernel, the fastest choice for a mini-batch; but for many rows
    of few classes its CPU kernel is about 5x slower than the same formula written out in
    elementwise kernels (K=10: 5 ms against 1 ms at N=60000), so large CPU inputs take that form.
    Both are the same max-shifted formula: tied logits of 1e7 give log 2, at any batch size.
    fp16/bf16 logits are computed in float32 and rounded once, as PyTorch's own kernels do.
    """
    if z.dtype in _LOW_PRECISION:
        return _log_softmax(z.float()).to(z.dtype)
    if z.shape[0] >= 1024 and z.device.type == "cpu":
        shifted = z - z.amax(dim=1, keepdim=True)
        return shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    return torch.log_softmax(z, dim=1)


# The lecture's derivatives, per sample and not yet divided by N: the backward passes below and
# the diagnostics (sample_grad) both use these, so there is one formula for each.


def _square_dy(y, t):
    """d/dy of 1/2 (y - t)^2: y - t."""
    return y - t


def _bernoulli_dz(z, t, in_place=False):
    """d/dz of softplus(z) - t z: sigmoid(z) - t."""
    y = torch.sigmoid(z)
    return y.sub_(t) if in_place else y - t


def _softmax_dz(p, t, in_place=False):
    """d/dz of -log softmax(z)[t], from p = softmax(z): p - onehot(t)."""
    minus_onehot = _minus_ones(p, p.shape[0])
    if in_place:
        return p.scatter_add_(1, t.unsqueeze(1), minus_onehot)
    return p.scatter_add(1, t.unsqueeze(1), minus_onehot.to(p.dtype))


def sample_grad(loss: str, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dL_i/dx_i for every sample i, not divided by N: `square` at outputs y, `bernoulli` and
    `softmax` at logits z. What each backward returns, times N."""
    if loss == "square":
        return _square_dy(x, t.to(x.dtype))
    if loss == "bernoulli":
        return _bernoulli_dz(x, t.to(x.dtype))
    if loss == "softmax":
        return _softmax_dz(torch.softmax(x, dim=1), t)
    raise ValueError(f"sample_grad: unknown loss {loss!r}; use square, bernoulli or softmax")


class SquareLoss(torch.autograd.Function):
    """1/2 (y - t)^2, summed over the output dimension, mean over the N samples."""

    generate_vmap_rule = True

    @staticmethod
    def forward(y, t):
        # torch's sum adds in a cascade (as mse_loss does): a float32 dot product of N*K terms
        # lost 1e-3 of the loss at 60000x1000
        return (y - t).square().sum() * (0.5 / y.shape[0])

    @staticmethod
    def setup_context(ctx, inputs, output):
        y, t = inputs
        ctx.save_for_backward(y, t)
        ctx.save_for_forward(y, t)

    @staticmethod
    def backward(ctx, grad):
        y, t = ctx.saved_tensors
        scale = grad / y.shape[0]
        dy = _square_dy(y, t)
        dy = dy.mul_(scale) if _in_place_ok(grad) else dy * scale  # (y - t) / N
        dt = -dy if ctx.needs_input_grad[1] else None
        return dy, dt

    @staticmethod
    def jvp(ctx, y_dot, t_dot):
        y, t = ctx.saved_tensors
        tangent = y_dot if t_dot is None else y_dot - t_dot
        return (_square_dy(y, t) * tangent).sum() / y.shape[0]


class BernoulliCE(torch.autograd.Function):
    """-t log sigmoid(z) - (1 - t) log(1 - sigmoid(z)) = softplus(z) - t z, mean over samples."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z, t):
        # -t log y - (1-t) log(1-y) with y = sigmoid(z) is softplus(z) - t z, never the log of
        # an underflowed probability: finite for z = +-1000. Written as
        # (1 - t) z + max(-z, 0) + log(1 + e^-|z|), as PyTorch's BCE-with-logits is: softplus(z)
        # - z would cancel to exactly 0 for t = 1 and z > 20 (the loss is e^-z > 0 there), and
        # t z is nan for t = 0, z = +inf (the loss is +inf).
        return torch.addcmul(F.relu(-z) + torch.log1p(torch.exp(-z.abs())), 1 - t, z).mean()

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, t = inputs
        ctx.save_for_backward(z, t)
        ctx.save_for_forward(z, t)

    @staticmethod
    def backward(ctx, grad):
        z, t = ctx.saved_tensors
        scale = grad / z.shape[0]
        if _in_place_ok(grad):
            dz = _bernoulli_dz(z, t, in_place=True).mul_(scale)  # (sigmoid(z) - t) / N
        else:
            dz = _bernoulli_dz(z, t) * scale
        dt = (-z * scale) if ctx.needs_input_grad[1] else None
        return dz, dt

    @staticmethod
    def jvp(ctx, z_dot, t_dot):
        z, t = ctx.saved_tensors
        tangent = (_bernoulli_dz(z, t) * z_dot).sum()
        if t_dot is not None:
            tangent = tangent - (z * t_dot).sum()
        return tangent / z.shape[0]


class SoftmaxCE(torch.autograd.Function):
    """-log softmax(z)[t], mean over samples; log softmax(z) = z - logsumexp(z)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z, t):
        log_p = _log_softmax(z)
        return F.nll_loss(log_p, t), log_p  # nll_loss: the fused "-mean of log_p[i, t_i]"

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, t = inputs
        _, log_p = output
        ctx.mark_non_differentiable(log_p)
        ctx.save_for_backward(z, log_p, t)
        ctx.save_for_forward(log_p, t)

    @staticmethod
    def backward(ctx, grad, _grad_log_p):
        z, log_p, t = ctx.saved_tensors
        n = log_p.shape[0]
        if _in_place_ok(grad):
            dz = _softmax_dz(log_p.exp(), t, in_place=True)  # softmax(z) - onehot(t)
            return dz.mul_(grad / n), None  # ... / N
        # the same formula out of place, with softmax(z) recomputed from z so that autograd can
        # differentiate it (log_p is a non-differentiable output)
        p = torch.softmax(z.float() if z.dtype in _LOW_PRECISION else z, dim=1).to(z.dtype)
        return _softmax_dz(p, t) * (grad / n), None

    @staticmethod
    def jvp(ctx, z_dot, t_dot):
        log_p, t = ctx.saved_tensors
        return (_softmax_dz(log_p.exp(), t) * z_dot).sum() / log_p.shape[0], None


# The same Functions minus their forward-mode rule, for torch.compile: Dynamo does not trace a
# Function with a custom jvp (a graph break, an error under fullgraph=True).
_NO_JVP = {"jvp": torch.autograd.Function.jvp}
_SquareLossForCompile = type("SquareLoss", (SquareLoss,), _NO_JVP)
_BernoulliCEForCompile = type("BernoulliCE", (BernoulliCE,), _NO_JVP)
_SoftmaxCEForCompile = type("SoftmaxCE", (SoftmaxCE,), _NO_JVP)


def _apply(function, for_compile, *args):
    """function.apply(*args), minus the inspect.signature call that torch 2.13's Python-side
    apply makes on every call for Functions with setup_context (about 15 us, pytorch#189573).

    The C++ apply underneath does the real work (setup_context included); the Python wrapper is
    kept where it matters: under torch.compile and under functorch transforms (vmap, grad).
    """
    if torch.compiler.is_compiling():
        return for_compile.apply(*args)
    if torch._C._are_functorch_transforms_active():
        return function.apply(*args)
    return super(torch.autograd.Function, function).apply(*args)


def _can_check() -> bool:
    """Value checks read the data (a host sync, a data-dependent branch): not possible while
    torch.compile traces or inside torch.func transforms (vmap, grad, jacrev), where tensors
    are stand-ins; shapes are still checked there."""
    return not torch.compiler.is_compiling() and not torch._C._are_functorch_transforms_active()


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
    return _apply(SquareLoss, _SquareLossForCompile, y, t.to(y.dtype))


def bernoulli_ce(z: torch.Tensor, t: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Bernoulli cross-entropy from logits z [N] and 0/1 targets t [N] (float, int or bool)."""
    if z.dim() != 1 or z.shape != t.shape:
        raise ValueError(
            f"bernoulli_ce: logits have shape {tuple(z.shape)} and targets {tuple(t.shape)}; "
            "both must be [N] (use softmax_ce for [N, K] logits)"
        )
    _check_batch("bernoulli_ce", z)
    t = t.to(z.dtype)
    if check and _can_check() and bool(((t != 0) & (t != 1)).any()):
        bad = t[(t != 0) & (t != 1)][0].item()
        raise ValueError(f"bernoulli_ce: targets must be 0 or 1, found {bad}")
    return _apply(BernoulliCE, _BernoulliCEForCompile, z, t)


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
    if check and _can_check() and bool(((t < 0) | (t >= k)).any()):
        bad = t[(t < 0) | (t >= k)][0].item()
        raise ValueError(f"softmax_ce: class index {bad} is outside [0, {k}) for K={k} logits")
    return _apply(SoftmaxCE, _SoftmaxCEForCompile, z, t)[0]
