"""Our SGD and Adam against torch.optim's, in float64, step by step; and the schedule."""

import math

import pytest
import torch

from mlrefresh.errors import ConfigError
from mlrefresh.optim import build_optimizer, check_optim

CASES = [
    ({"name": "sgd", "lr": 0.1}, torch.optim.SGD, {"lr": 0.1}),
    ({"name": "sgd", "lr": 0.05, "momentum": 0.9}, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    (
        {"name": "sgd", "lr": 0.1, "momentum": 0.5, "weight_decay": 0.01},
        torch.optim.SGD,
        {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.01},
    ),
    ({"name": "adam", "lr": 0.003}, torch.optim.Adam, {"lr": 0.003}),
    (
        {"name": "adam", "lr": 0.01, "betas": [0.8, 0.99], "weight_decay": 0.1},
        torch.optim.Adam,
        {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1},
    ),
]


def _losses(x, y, w, b):
    return torch.nn.functional.cross_entropy(x @ w.T + b, y)


@pytest.mark.parametrize(("ours_cfg", "reference", "kwargs"), CASES)
def test_matches_torch_optim_for_ten_steps(ours_cfg, reference, kwargs):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (32,), generator=gen)
    start = [
        torch.randn(3, 5, generator=gen, dtype=torch.float64),
        torch.zeros(3, dtype=torch.float64),
    ]
    ours_params = [torch.nn.Parameter(p.clone()) for p in start]
    ref_params = [torch.nn.Parameter(p.clone()) for p in start]
    ours, _ = build_optimizer(ours_cfg, ours_params, total_steps=10)
    ref = reference(ref_params, **kwargs)
    for _ in range(10):
        for opt, params in ((ours, ours_params), (ref, ref_params)):
            opt.zero_grad()
            _losses(x, y, *params).backward()
            opt.step()
        for a, b in zip(ours_params, ref_params):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def _pair(cfg, flat_first: bool, seed=0):
    """Two optimizers on equal float32 parameters (weight, bias), one of them flattened."""
    gen = torch.Generator().manual_seed(seed)
    start = [torch.randn(3, 5, generator=gen), torch.randn(3, generator=gen)]
    params = [[torch.nn.Parameter(p.clone()) for p in start] for _ in range(2)]
    opts = [build_optimizer(cfg, ps, total_steps=10)[0] for ps in params]
    assert opts[0 if flat_first else 1].flatten() is not None
    return params, opts


def _grads_arrive(how, opt, params, x, y):
    """The gradients of one step, as they arrive in a training step."""
    if how == "written into the views":  # epoch.linear_step: out= into p.grad
        for p, g in zip(params, torch.autograd.grad(_losses(x, y, *params), params)):
            p.grad.copy_(g) if p.grad is not None else setattr(p, "grad", g)
        return
    if how == "autograd after zero_grad":
        opt.zero_grad()
    else:  # a gradient set apart from the flat buffer: copied in by the step
        for p in params:
            p.grad = None
    _losses(x, y, *params).backward()


@pytest.mark.parametrize("how", ["written into the views", "autograd after zero_grad",
                                 "autograd after grads set to None"])  # fmt: skip
@pytest.mark.parametrize(("cfg", "_reference", "_kwargs"), CASES)
def test_a_flattened_rule_updates_bit_for_bit_as_kept_apart(cfg, _reference, _kwargs, how):
    """flatten(): the parameters become views of one buffer, the update is the same to the bit
    (float32), and the state saved is per parameter, the same as the rule's kept apart."""
    (flat_params, apart_params), (flat, apart) = _pair(cfg, flat_first=True)
    buffer = flat.flat[0][0]
    assert all(p.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr()
               for p in flat_params)  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    for _ in range(6):
        x, y = torch.randn(16, 5, generator=gen), torch.randint(0, 3, (16,), generator=gen)
        for opt, params in ((flat, flat_params), (apart, apart_params)):
            _grads_arrive(how, opt, params, x, y)
            opt.step()
        for a, b in zip(flat_params, apart_params):
            assert torch.equal(a, b)
    assert _same(flat.state_dict(), apart.state_dict())


def _same(a, b) -> bool:
    """Equal states: the same keys, None, numbers, and tensors of the same shape and bits."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


@pytest.mark.parametrize("flat_first", [True, False])
@pytest.mark.parametrize(("cfg", "_reference", "_kwargs"), CASES[1:4])
def test_a_state_moves_between_a_flattened_rule_and_one_kept_apart(cfg, _reference, _kwargs,
                                                                   flat_first):  # fmt: skip
    """A checkpoint of one form resumes in the other: the same steps after it, to the bit."""
    (first, second), (opt1, opt2) = _pair(cfg, flat_first)
    gen = torch.Generator().manual_seed(2)
    batches = [(torch.randn(16, 5, generator=gen), torch.randint(0, 3, (16,), generator=gen))
               for _ in range(6)]  # fmt: skip
    for x, y in batches[:3]:
        _grads_arrive("autograd after zero_grad", opt1, first, x, y)
        opt1.step()
    with torch.no_grad():
        for a, b in zip(second, first):
            a.copy_(b)
    opt2.load_state_dict(opt1.state_dict())
    for x, y in batches[3:]:
        for opt, params in ((opt1, first), (opt2, second)):
            _grads_arrive("autograd after zero_grad", opt, params, x, y)
            opt.step()
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_flatten_leaves_a_stacks_settings_alone():
    """A setting shaped to broadcast against each parameter (a stack's lr, sweeps/) cannot act
    on one flat buffer: flatten() says None and changes nothing."""
    params = [torch.nn.Parameter(torch.ones(2, 3)), torch.nn.Parameter(torch.ones(2))]
    lr = torch.tensor([[0.1], [0.2]])
    opt, _ = build_optimizer({"name": "sgd", "lr": lr, "momentum": 0.0}, params, 1)
    pointers = [p.data_ptr() for p in params]
    assert opt.flatten() is None and opt.flat is None
    assert [p.data_ptr() for p in params] == pointers


def test_cosine_schedule_goes_from_lr_to_zero():
    w = torch.nn.Parameter(torch.zeros(1))
    opt, schedule = build_optimizer({"name": "sgd", "lr": 0.2, "schedule": "cosine"}, [w], 100)
    seen = []
    for step in (0, 50, 99):
        schedule(step)
        seen.append(opt.lr)
    assert seen[0] == pytest.approx(0.2) and seen[1] == pytest.approx(0.1)
    assert seen[2] == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 0.99)))


def test_constant_schedule_keeps_lr():
    w = torch.nn.Parameter(torch.zeros(1))
    opt, schedule = build_optimizer({"name": "adam", "lr": 0.2, "schedule": "constant"}, [w], 9)
    schedule(5)
    assert opt.lr == 0.2


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"name": "rmsprop", "lr": 0.1}, "optim.name='rmsprop' is not one of sgd, adam"),
        ({"name": "sgd", "lr": 0}, "optim.lr=0 must be a finite number > 0"),
        ({"name": "sgd", "lr": "fast"}, "optim.lr='fast' must be a finite number"),
        (
            {"name": "sgd", "lr": 0.1, "momentum": 1.0},
            r"momentum=1 must be a finite number >= 0 and < 1",  # checks._show: 1.0 as 1
        ),
        ({"name": "sgd", "lr": 0.1, "weight_decay": -1}, "weight_decay=-1"),
        ({"name": "adam", "lr": 0.1, "betas": [0.9]}, "betas"),
        ({"name": "adam", "lr": 0.1, "schedule": "linear"}, "schedule='linear'"),
    ],
)
def test_bad_settings_are_refused(cfg, message):
    with pytest.raises(ConfigError, match=message):
        check_optim(cfg)
