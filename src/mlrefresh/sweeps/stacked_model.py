"""M models of one shape as one model, and their M optimizers as one (hydra/launcher=stacked).

`stack_models(models)` makes one model whose parameters have a leading model dimension
([M, K, D]); it maps inputs [G, N, D] (G batches, each shared by M/G consecutive models) or
[N, D] (the same inputs for all) to logits [M, N] or [M, N, K] with batched matrix products
(StackedLinear): the core model's own forward, with its `layer` method replaced.
`model_slice(stack, m)` is model m's state_dict, with the keys and shapes of its own model.

`StackedOptimizer` applies the core's update rules (mlrefresh/optim.py) to the stacked
parameters, one rule per parameter, each job's lr, momentum and weight decay a tensor [M, 1..]
that broadcasts over that parameter's model dimension; `state_dict(m)` is job m's part, the
state its own optimizer would have.

Example:
    >>> import torch
    >>> from mlrefresh.models import build_model
    >>> stack = stack_models([build_model("softmax", 4, 3) for _ in range(2)])
    >>> stack(torch.randn(5, 4)).shape, model_slice(stack, 1)["linear.weight"].shape
    (torch.Size([2, 5, 3]), torch.Size([3, 4]))
"""

import copy
import functools

import torch
from torch import nn

from mlrefresh.models import Model
from mlrefresh.optim import build_optimizer

__all__ = ["StackedLinear", "StackedOptimizer", "model_slice", "stack_models", "weight_grad"]


class StackedLinear(torch.autograd.Function):
    """z = x W^T + b for M models at once: W [M, K, D], b [M, K], x [G, N, D] -> z [M, N, K],
    where G divides M and each input batch x[g] goes to M/G consecutive models (G = M: one batch
    per model; G = 1: the same inputs for all, as in validation; in between: jobs that share a
    seed share their batches, which are then read once).

    The backward is written out, dW = dz^T x and db = sum over rows of dz, each one batched
    product in W's own layout: autograd's backward of a product with the transposed W costs
    three times as much on the CPU (a transposed gradient, then a copy)."""

    @staticmethod
    def forward(x, weight, bias):
        m, k, d = weight.shape
        # (W x^T)^T: on the CPU faster than x W^T for K = 10 (a wide product, not a tall one)
        z = torch.bmm(weight.view(x.shape[0], -1, d), x.transpose(1, 2))  # [G, M/G * K, N]
        return z.view(m, k, -1).transpose(1, 2) + bias.unsqueeze(1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _ = inputs
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, dz):
        x, weight = ctx.saved_tensors
        (g, n, d), m = x.shape, weight.shape[0]
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = torch.bmm(dz, weight).view(g, m // g, n, d).sum(1)
        if ctx.needs_input_grad[1]:
            dw = weight_grad(dz, x, weight.shape)
        if ctx.needs_input_grad[2]:
            db = dz.sum(1)
        return dx, dw, db


def weight_grad(dz: torch.Tensor, x: torch.Tensor, shape) -> torch.Tensor:
    """dW = dz^T x for each of M models ([M, K, D] = shape), from dz [M, N, K] and the inputs
    x [G, N, D] (each x[g] shared by M/G consecutive models): one batched product."""
    (g, n, _), (m, k, d) = x.shape, shape
    return torch.bmm(dz.transpose(1, 2).reshape(g, -1, n), x).view(m, k, d)


class _StackedLayers:
    """A model's own forward, each layer applied to M models at once."""

    def layer(self, x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        return StackedLinear.apply(x if x.dim() == 3 else x.unsqueeze(0), linear.weight,
                                   linear.bias)  # fmt: skip


@functools.cache
def _stacked_class(cls: type) -> type:
    """cls with each layer stacked; `stacks` names cls (epoch.written_out judges its forward)."""
    return type(f"Stacked{cls.__name__}", (_StackedLayers, cls), {"stacks": cls})


def stack_models(models: list[Model]) -> Model:
    """One model whose parameters are those of `models` (same class and shape) stacked along a
    new first dimension; copies, not views: train the stack, then read each with model_slice."""
    stack = copy.deepcopy(models[0])
    for name, _ in models[0].named_parameters():
        module_name, _, attr = name.rpartition(".")
        module = stack.get_submodule(module_name)
        values = [m.get_parameter(name).detach() for m in models]
        setattr(module, attr, nn.Parameter(torch.stack(values)))
    stack.__class__ = _stacked_class(type(models[0]))
    return stack


def model_slice(stack: nn.Module, m: int) -> dict:
    """Model m's state_dict (keys and shapes as its own model's), as views into the stack."""
    return {key: value[m] for key, value in stack.state_dict().items()}


def _per_model(values: list[float], p: torch.Tensor, dtype=None):
    """One setting for each of M models: the number itself when all agree, else a tensor
    [M, 1, ...] that broadcasts over the stacked parameter p."""
    if all(v == values[0] for v in values):
        return values[0]
    shape = (-1, *(1,) * (p.dim() - 1))
    return torch.tensor(values, dtype=dtype or p.dtype, device=p.device).view(shape)


class StackedOptimizer:
    """The core's update rule for each stacked parameter, with each job's own settings."""

    def __init__(self, cfgs, params, total_steps: int):
        self.rules, self.schedules = [], []
        for p in params:
            cfg = dict(cfgs[0])
            for key in ("lr", "momentum", "weight_decay"):
                if key in cfg:
                    # lr in float64: the schedule's products round as a run alone's (in Python
                    # floats), once, into the rule's lr of p's dtype (build_optimizer)
                    dtype = torch.float64 if key == "lr" else None
                    cfg[key] = _per_model([float(c[key]) for c in cfgs], p, dtype)
            rule, schedule = build_optimizer(cfg, [p], total_steps)
            self.rules.append(rule)
            self.schedules.append(schedule)
        self.capturable = all(getattr(r, "capturable", False) for r in self.rules)

    def schedule(self, step: int) -> None:
        for schedule in self.schedules:
            schedule(step)

    def zero_grad(self) -> None:
        for rule in self.rules:
            rule.zero_grad()

    def step(self) -> None:
        for rule in self.rules:
            rule.step()

    def on_device(self, device) -> None:
        for rule in self.rules:
            rule.on_device(device)

    def load_state_dict(self, m: int, state: dict) -> None:
        """Job m's optimizer state (its own optimizer's state_dict, as state_dict(m) gives it)
        into the stack: a stack of jobs resumed at one epoch (stacking.train_stacked)."""
        for i, rule in enumerate(self.rules):
            for key, value in state.items():
                if isinstance(value, list):
                    if getattr(rule, key) is None:  # SGD before its first step: buffers now
                        setattr(rule, key, [torch.zeros_like(p) for p in rule.params])
                    with torch.no_grad():
                        getattr(rule, key)[0][m].copy_(value[i])
                elif key == "t":  # the same step count for every job of the stack
                    rule.t = rule.t.fill_(value) if torch.is_tensor(rule.t) else value

    def state_dict(self, m: int) -> dict:
        """Job m's optimizer state, as its own optimizer's state_dict."""
        states = [rule.state_dict() for rule in self.rules]
        part = {}
        for key, value in states[0].items():
            if isinstance(value, list):
                part[key] = [v[m].clone() for state in states for v in state[key]]
            else:
                part[key] = value
        return part
