"""Our hand-written losses against PyTorch's own, in float64, as micrograd checks against torch."""

import pytest
import torch
import torch.nn.functional as F

from mlrefresh.losses import (
    BernoulliCE,
    SoftmaxCE,
    SquareLoss,
    bernoulli_ce,
    softmax_ce,
    square_loss,
)
from mlrefresh.units import UNITS

F64 = torch.float64


def _grad(fn, *inputs):
    """Value and gradient of fn with respect to its first input."""
    x = inputs[0].detach().clone().requires_grad_(True)
    value = fn(x, *inputs[1:])
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


def _close(ours, theirs, rtol=1e-6):
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=1e-12)


def ref_square(y, t):
    return 0.5 * F.mse_loss(y, t, reduction="sum") / y.shape[0]


# --- gradcheck: the hand-written backward against finite differences ---------------------------


def test_gradcheck_square_loss_both_inputs():
    y = torch.rand(6, 4, dtype=F64, requires_grad=True)
    t = torch.rand(6, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(SquareLoss.apply, (y, t))


def test_gradcheck_bernoulli_ce_both_inputs():
    z = (3 * torch.randn(9, dtype=F64)).requires_grad_()
    t = torch.randint(0, 2, (9,)).to(F64).requires_grad_()
    assert torch.autograd.gradcheck(BernoulliCE.apply, (z, t))


def test_gradcheck_softmax_ce():
    z = (3 * torch.randn(8, 5, dtype=F64)).requires_grad_()
    t = torch.randint(0, 5, (8,))
    assert torch.autograd.gradcheck(lambda z: SoftmaxCE.apply(z, t)[0], (z,))


# --- values and gradients equal PyTorch's --------------------------------------------------------


@pytest.mark.parametrize("n", [1, 1000])
@pytest.mark.parametrize("k", [2, 100])
def test_softmax_ce_matches_cross_entropy(n, k):
    z = 4 * torch.randn(n, k, dtype=F64)
    t = torch.randint(0, k, (n,))
    ours = _grad(softmax_ce, z, t)
    theirs = _grad(F.cross_entropy, z, t)
    _close(ours[0], theirs[0])
    _close(ours[1], theirs[1])


@pytest.mark.parametrize("n", [1, 1000])
@pytest.mark.parametrize("target_dtype", [F64, torch.int64, torch.bool])
def test_bernoulli_ce_matches_bce_with_logits(n, target_dtype):
    z = 4 * torch.randn(n, dtype=F64)
    t = torch.randint(0, 2, (n,))
    ours = _grad(bernoulli_ce, z, t.to(target_dtype))
    theirs = _grad(F.binary_cross_entropy_with_logits, z, t.to(F64))
    _close(ours[0], theirs[0])
    _close(ours[1], theirs[1])


@pytest.mark.parametrize("n", [1, 1000])
@pytest.mark.parametrize("k", [2, 100])
def test_square_loss_matches_mse_one_hot(n, k):
    y = torch.rand(n, k, dtype=F64)
    t = F.one_hot(torch.randint(0, k, (n,)), k)
    ours = _grad(square_loss, y, t)
    theirs = _grad(ref_square, y, t.to(F64))
    _close(ours[0], theirs[0])
    _close(ours[1], theirs[1])


def test_square_loss_binary_gradient_is_y_minus_t_over_n():
    y = torch.tensor([0.9, 0.2, 0.5, 0.0], dtype=F64)
    t = torch.tensor([1, 0, 0, 1])
    value, grad = _grad(square_loss, y, t)
    _close(value, torch.tensor((0.01 + 0.04 + 0.25 + 1.0) / 2 / 4, dtype=F64))
    _close(grad, (y - t) / 4)


@pytest.mark.parametrize("name", ["softmax", "bernoulli"])
def test_extreme_logits_are_finite_and_match_torch(name):
    if name == "softmax":
        z = torch.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 5.0]])
        t = torch.tensor([1, 1])
        ours, theirs = _grad(softmax_ce, z, t), _grad(F.cross_entropy, z, t)
    else:
        z = torch.tensor([1000.0, -1000.0, 1000.0, -1000.0])
        t = torch.tensor([0.0, 1.0, 1.0, 0.0])
        ours = _grad(bernoulli_ce, z, t)
        theirs = _grad(F.binary_cross_entropy_with_logits, z, t)
    assert torch.isfinite(ours[0]) and torch.isfinite(ours[1]).all()
    assert ours[0] > 100  # confidently wrong samples cost about 1000 nats, not inf
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])


def test_naive_log_of_sigmoid_would_be_infinite():
    """The reason for computing from logits: the naive form gives inf where ours is finite."""
    z, t = torch.tensor([-1000.0]), torch.tensor([1.0])
    assert torch.isinf(-torch.log(torch.sigmoid(z))).all()
    assert bernoulli_ce(z, t).item() == pytest.approx(1000.0)


# --- the lecture's claims, as numbers ------------------------------------------------------------


def test_square_loss_through_sigmoid_saturates_where_ce_does_not():
    """A confidently wrong positive (z = -10, t = 1)."""
    z, t = torch.tensor([-10.0], dtype=F64), torch.tensor([1.0], dtype=F64)
    _, g_square = _grad(lambda z, t: square_loss(UNITS["sigmoid"](z), t), z, t)
    _, g_ce = _grad(bernoulli_ce, z, t)
    assert abs(g_square.item()) < 1e-3
    assert g_ce.item() == pytest.approx(-1.0, abs=1e-4)
    y = torch.sigmoid(z)  # the saturation factor y (1 - y), from the chain rule
    _close(g_square, (y - t) * y * (1 - y))


def test_clamped_unit_passes_no_gradient_outside_unit_interval():
    z = torch.tensor([-3.0, -0.01, 0.3, 0.7, 1.01, 4.0], dtype=F64)
    t = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0], dtype=F64)
    _, g = _grad(lambda z, t: square_loss(UNITS["clamped"](z), t), z, t)
    assert g[[0, 1, 4, 5]].abs().max() == 0
    assert g[[2, 3]].abs().min() > 0
    _close(g[[2, 3]], (z[[2, 3]] - t[[2, 3]]) / 6)


def test_cross_entropy_is_entropy_plus_kl():
    """H(p, q) = H(p) + KL(p || q), with H(p, q) assembled from our softmax_ce."""
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        k = 6
        p = torch.softmax(torch.randn(k, generator=gen, dtype=F64), 0)
        z = torch.randn(1, k, generator=gen, dtype=F64)
        q = torch.softmax(z, 1)[0]
        cross = sum(p[c] * softmax_ce(z, torch.tensor([c])) for c in range(k))
        entropy = -(p * p.log()).sum()
        kl = (p * (p / q).log()).sum()
        _close(cross, entropy + kl, rtol=1e-10)
        assert kl > 0


# --- misuse gives clear ValueErrors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: square_loss(torch.rand(4, 3), torch.rand(4)), r"\(4, 3\) but targets \(4,\)"),
        (lambda: bernoulli_ce(torch.rand(4, 2), torch.rand(4, 2)), r"both must be \[N\]"),
        (lambda: bernoulli_ce(torch.rand(4), torch.rand(5)), r"\(4,\) and targets \(5,\)"),
        (lambda: softmax_ce(torch.rand(4, 3), torch.tensor([0, 1, 2])), r"\(4, 3\).*\(3,\)"),
        (lambda: softmax_ce(torch.rand(2, 3), torch.tensor([0, 3])), r"class index 3.*\[0, 3\)"),
        (lambda: softmax_ce(torch.rand(2, 3), torch.tensor([-1, 0])), r"class index -1"),
        (lambda: softmax_ce(torch.rand(2, 3), torch.tensor([0.0, 1.0])), "int64"),
        (lambda: bernoulli_ce(torch.rand(3), torch.tensor([0.0, 1.0, 0.5])), r"0 or 1.*0\.5"),
        (lambda: bernoulli_ce(torch.rand(2), torch.tensor([2, 0])), r"0 or 1, found 2"),
        (lambda: square_loss(torch.rand(0), torch.rand(0)), "empty batch"),
        (lambda: bernoulli_ce(torch.rand(0), torch.rand(0)), "empty batch"),
        (lambda: softmax_ce(torch.rand(0, 3), torch.zeros(0, dtype=torch.long)), "empty batch"),
    ],
)
def test_misuse_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_once_differentiable_refuses_double_backward():
    z = torch.randn(3, 2, requires_grad=True)
    (g,) = torch.autograd.grad(softmax_ce(z, torch.tensor([0, 1, 1])), z, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


# --- torch.compile gives the same values and gradients as eager ----------------------------------


@pytest.mark.slow
def test_compiled_losses_match_eager():
    torch._dynamo.reset()
    n, k = 32, 5
    y = torch.rand(n, k)
    z_k = torch.randn(n, k)
    z_1 = torch.randn(n)
    onehot = F.one_hot(torch.randint(0, k, (n,)), k).float()
    classes = torch.randint(0, k, (n,))
    bits = torch.randint(0, 2, (n,)).float()

    cases = [
        (lambda y, t: square_loss(torch.sigmoid(y), t), y, onehot),
        (bernoulli_ce, z_1, bits),
        (softmax_ce, z_k, classes),
    ]
    for fn, x, t in cases:
        eager = _grad(fn, x, t)
        compiled = _grad(torch.compile(fn, fullgraph=True), x, t)
        torch.testing.assert_close(compiled[0], eager[0])
        torch.testing.assert_close(compiled[1], eager[1])
