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
