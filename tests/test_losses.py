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
    assert torch.autograd.gradcheck(lambda z: SoftmaxCE.apply(z, t), (z,))


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


def test_clamped_unit_passes_the_gradient_at_the_ends_of_the_interval():
    """dy/dz = 1 at z = 0 and z = 1, on every torch (2.14's clamp passes 0 there): a clamped
    model starting at zeros (z = 0) trains."""
    z = torch.tensor([0.0, 1.0, 0.0], dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(UNITS["clamped"](z).sum(), z)
    assert g.tolist() == [1.0, 1.0, 1.0]
    assert UNITS["clamped"](torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0])).tolist() == [0, 0, 0.5, 1, 1]


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


# --- every autograd feature PyTorch's own losses support ----------------------------------------
# (loss name, our loss of x, PyTorch's, a random input x of shape [N] or [N, K] in dtype)


def _cases(dtype, n=6, k=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    classes = torch.randint(0, k, (n,), generator=gen)
    bits = torch.randint(0, 2, (n,), generator=gen).to(dtype)
    target = torch.rand(n, k, generator=gen, dtype=F64).to(dtype)
    sq_theirs = lambda y: 0.5 * F.mse_loss(torch.sigmoid(y), target, reduction="sum") / n  # noqa: E731
    return [
        ("softmax", lambda z: softmax_ce(z, classes), lambda z: F.cross_entropy(z, classes),
         3 * torch.randn(n, k, generator=gen, dtype=F64).to(dtype)),
        ("bernoulli", lambda z: bernoulli_ce(z, bits),
         lambda z: F.binary_cross_entropy_with_logits(z, bits),
         3 * torch.randn(n, generator=gen, dtype=F64).to(dtype)),
        ("square", lambda y: square_loss(torch.sigmoid(y), target), sq_theirs,
         torch.randn(n, k, generator=gen, dtype=F64).to(dtype)),
    ]  # fmt: skip


CASES64 = _cases(F64)
IDS = [c[0] for c in CASES64]
TOL = {F64: {"rtol": 1e-9, "atol": 1e-12}, torch.float32: {"rtol": 1e-4, "atol": 1e-6}}


@pytest.mark.parametrize("case", CASES64, ids=IDS)
def test_gradcheck_batched_and_forward_mode(case):
    _, ours, _, x = case
    x = x.requires_grad_()
    assert torch.autograd.gradcheck(ours, (x,), check_batched_grad=True, check_forward_ad=True)


@pytest.mark.parametrize("case", CASES64, ids=IDS)
def test_gradgradcheck(case):
    _, ours, _, x = case
    assert torch.autograd.gradgradcheck(ours, (x.requires_grad_(),), check_batched_grad=True)


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("index", range(3), ids=IDS)
def test_hessian_equals_pytorchs(index, dtype):
    _, ours, theirs, x = _cases(dtype)[index]
    h_ours = torch.autograd.functional.hessian(ours, x)
    h_theirs = torch.autograd.functional.hessian(theirs, x)
    assert h_theirs.abs().max() > 1e-3  # not a trivially zero Hessian
    torch.testing.assert_close(h_ours, h_theirs, **TOL[dtype])
    torch.testing.assert_close(torch.func.hessian(ours)(x), h_theirs, **TOL[dtype])


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("index", range(3), ids=IDS)
def test_gradient_penalty_through_a_linear_layer(index, dtype):
    """loss + |dloss/dx|^2 through a Linear layer: dW needs the loss's second derivative."""
    name, _, _, _ = CASES64[index]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, generator=gen, dtype=F64).to(dtype).requires_grad_()
    out = 4 if name != "bernoulli" else 1
    weight = torch.randn(out, 3, generator=gen, dtype=F64).to(dtype)
    grads = []
    for which in (1, 2):
        w = weight.clone().requires_grad_()
        _, ours, theirs, _ = _cases(dtype)[index]
        fn = ours if which == 1 else theirs
        z = (x @ w.T).squeeze(1) if out == 1 else x @ w.T
        loss = fn(z)
        (gx,) = torch.autograd.grad(loss, x, create_graph=True)
        (dw,) = torch.autograd.grad(loss + gx.square().sum(), w)
        grads.append(dw)
    torch.testing.assert_close(grads[0], grads[1], **TOL[dtype])


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("index", range(3), ids=IDS)
def test_vmap_per_sample_gradients_equal_a_loop(index, dtype):
    """torch.func.vmap(grad(...)): the gradient of each sample's own loss, in one call."""
    _, ours, _, x = _cases(dtype)[index]
    name = IDS[index]
    n = x.shape[0]
    gen = torch.Generator().manual_seed(2)
    if name == "softmax":
        t = torch.randint(0, x.shape[1], (n,), generator=gen)
        per = lambda xi, ti: softmax_ce(xi[None], ti[None])  # noqa: E731
    elif name == "bernoulli":
        t = torch.randint(0, 2, (n,), generator=gen).to(dtype)
        per = lambda xi, ti: bernoulli_ce(xi[None], ti[None])  # noqa: E731
    else:
        t = torch.rand(x.shape, generator=gen, dtype=F64).to(dtype)
        per = lambda xi, ti: square_loss(torch.sigmoid(xi[None]), ti[None])  # noqa: E731
    batched = torch.func.vmap(torch.func.grad(per))(x, t)
    loop = torch.stack([_grad(lambda a, b: per(a, b), x[i], t[i])[1] for i in range(n)])
    torch.testing.assert_close(batched, loop, **TOL[dtype])
    jac = torch.autograd.functional.jacobian(ours, x, vectorize=True)
    torch.testing.assert_close(jac, _grad(lambda a: ours(a), x)[1], **TOL[dtype])


@pytest.mark.parametrize("index", range(3), ids=IDS)
def test_jvp_equals_finite_differences_and_pytorchs(index):
    _, ours, theirs, x = CASES64[index]
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    value, tangent = torch.func.jvp(ours, (x,), (v,))
    eps = 1e-6
    finite = (ours(x + eps * v) - ours(x - eps * v)) / (2 * eps)
    torch.testing.assert_close(tangent, finite, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(tangent, torch.func.jvp(theirs, (x,), (v,))[1])
    torch.testing.assert_close(torch.func.jacfwd(ours)(x), torch.func.jacrev(theirs)(x))


# --- exact at every batch size: tied, extreme and low-precision logits -------------------------

SIZES = [1, 1023, 1024, 60000]  # the CPU path changes at 1024 rows


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(
    ("dtype", "big"),
    [(torch.float32, 1e7), (torch.float32, 1e8), (torch.float32, 1e30), (F64, 1e17), (F64, 1e300)],
)
def test_tied_large_logits_give_log_2_at_every_size(n, dtype, big):
    z = torch.tensor([[big, big, 0.0]], dtype=dtype).repeat(n, 1)
    t = torch.zeros(n, dtype=torch.long)
    value, grad = _grad(softmax_ce, z, t)
    assert value.item() == pytest.approx(0.6931471805599453, rel=1e-6)
    expected = torch.tensor([-0.5, 0.5, 0.0], dtype=dtype) / n
    torch.testing.assert_close(grad, expected.expand(n, 3), rtol=1e-5, atol=0)
    torch.testing.assert_close(grad.sum(1), torch.zeros(n, dtype=dtype))  # p sums to 1


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_extreme_logits_match_pytorch_at_every_size(n, dtype):
    gen = torch.Generator().manual_seed(n)
    z = (torch.randn(n, 10, generator=gen, dtype=F64) * 1000).to(dtype)
    t = torch.randint(0, 10, (n,), generator=gen)
    ours, theirs = _grad(softmax_ce, z, t), _grad(F.cross_entropy, z, t)
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])


@pytest.mark.parametrize("rows", [7, 80, 100, 128])
def test_a_rows_log_softmax_and_softmax_do_not_depend_on_the_other_rows(one_thread, rows):
    """What a stack of jobs (sweeps/) relies on to round as each job alone: the loss and the
    gradient of a row have the same bits whether its batch is alone, in columns (a linear
    layer's (W x^T)^T), or one of 12 stacked batches in rows."""
    from mlrefresh.loss_plumbing import log_softmax, softmax

    gen = torch.Generator().manual_seed(rows)
    by_class = 3 * torch.randn(12, 10, rows, generator=gen)  # each job's logits, class by class
    stacked = by_class.transpose(1, 2).flatten(0, 1)  # [12 * rows, 10], in rows
    for f in (log_softmax, softmax):
        together = f(stacked).view(12, rows, 10)
        for m in range(12):
            alone = by_class[m].t()  # [rows, 10] in columns
            assert torch.equal(together[m], f(alone)), (f.__name__, m)
            assert torch.equal(together[m], f(alone.contiguous())), (f.__name__, m)


def _errors(fn, ref, z, t):
    value, grad = _grad(fn, z, t)
    ref_value, ref_grad = _grad(ref, z.to(F64), t)
    return (value.double() - ref_value).abs().item(), (grad.double() - ref_grad).abs().max().item()


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_error_no_worse_than_pytorchs(n, dtype):
    """Against a float64 reference on the same rounded inputs: our error at most PyTorch's
    (plus one unit in the last place of the result, for ties in rounding)."""
    gen = torch.Generator().manual_seed(7)
    z = (3 * torch.randn(n, 10, generator=gen)).to(dtype)
    t = torch.randint(0, 10, (n,), generator=gen)
    ulp = torch.finfo(dtype).eps
    ours = _errors(softmax_ce, F.cross_entropy, z, t)
    theirs = _errors(F.cross_entropy, F.cross_entropy, z, t)
    assert ours[0] <= theirs[0] + 2 * ulp, (ours, theirs)
    assert ours[1] <= theirs[1] + ulp / n, (ours, theirs)


# --- three numerical defects, against PyTorch's own losses --------------------------------------


@pytest.mark.parametrize("k", [10, 100, 1000])
def test_square_loss_in_float32_is_as_exact_as_mse_loss_at_large_n_k(k):
    gen = torch.Generator().manual_seed(k)
    y, t = torch.rand(60000, k, generator=gen), torch.rand(60000, k, generator=gen)
    exact = 0.5 * ((y.double() - t.double()) ** 2).sum() / 60000
    ours = (square_loss(y, t).double() - exact).abs() / exact
    theirs = (0.5 * F.mse_loss(y, t, reduction="sum").double() / 60000 - exact).abs() / exact
    assert ours <= max(2 * theirs, 1e-7), (ours, theirs)  # a dot product gave 1.2e-3 at K=1000


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize(
    ("z", "t"), [(15.0, 1.0), (21.0, 1.0), (30.0, 1.0), (60.0, 1.0), (-30.0, 0.0), (-60.0, 0.0),
                 (float("inf"), 0.0), (float("-inf"), 1.0), (float("-inf"), 0.0)],
)  # fmt: skip
def test_bernoulli_ce_equals_pytorchs_far_out_and_at_infinity(z, t, dtype):
    z, t = torch.tensor([z], dtype=dtype), torch.tensor([t], dtype=dtype)
    ours, theirs = bernoulli_ce(z, t), F.binary_cross_entropy_with_logits(z, t)
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=0, equal_nan=True), (
        ours.item(), theirs.item())  # fmt: skip
