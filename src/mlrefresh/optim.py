"""Optimizers, written out as the update rules they are: SGD (momentum, weight decay) and Adam.

They follow torch.optim's conventions exactly (tests compare them in float64 against
torch.optim.SGD and torch.optim.Adam) but are plain in-place tensor updates: no hooks, no
compiler machinery (torch.optim's first step imports Dynamo, about 1 s of start-up here),
about 20 us less per step. The learning rate lives in `optimizer.lr`; `schedule(step)` sets it
before each step: `constant`, or `cosine` from `lr` down to 0 over the whole run.

lr, momentum and weight decay are numbers, or tensors that broadcast against every parameter
(the stacked jobs of sweeps/stacking.py give each parameter its own). `check_optim` refuses a
bad setting; the config's validation pass (validate.py) runs it once, before any work.

`optimizer.flatten()` keeps the parameters in one buffer and their gradients in another
(flat.py), so that a step is a rule's few kernels once, not once a parameter: what the
written-out step of a linear model does (epoch.linear_step). The numbers are the same.

Example:
    >>> import torch
    >>> from mlrefresh.optim import build_optimizer
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt, schedule = build_optimizer({"name": "sgd", "lr": 0.5, "schedule": "constant"}, [w], 1)
    >>> (2 * w).sum().backward(); opt.step(); w.data  # w - lr * dL/dw = 1 - 0.5 * 2
    tensor([0.])
"""

import dataclasses
import math
from typing import Annotated, NamedTuple

import torch

from mlrefresh import flat, schema
from mlrefresh.checks import choice, number, rule
from mlrefresh.errors import ConfigError

__all__ = ["OPTIMIZERS", "SGD", "Adam", "AdamConfig", "SGDConfig", "build_optimizer",
           "check_optim"]  # fmt: skip


def _nonzero(value) -> bool:
    return isinstance(value, torch.Tensor) or value != 0


def _add_scaled_(p: torch.Tensor, g: torch.Tensor, alpha) -> torch.Tensor:
    """p += alpha * g, alpha a number or a tensor: the same rounding either way (addcmul_ is
    add_(alpha=) for a tensor alpha; `p.add_(g * alpha)` rounds twice, and at a large learning
    rate those last bits grow over the steps: the stacked jobs of sweeps/ drifted from their
    runs alone)."""
    if isinstance(alpha, torch.Tensor):
        return p.addcmul_(g, alpha)
    return p.add_(g, alpha=alpha)


def _plus(g: torch.Tensor, p: torch.Tensor, alpha) -> torch.Tensor:
    """g + alpha * p, a new tensor (weight decay), alpha a number or a tensor (as above)."""
    if isinstance(alpha, torch.Tensor):
        return torch.addcmul(g, p, alpha)
    return g.add(p, alpha=alpha)


class _Rule:
    """What both update rules share: the parameters, their gradients, the learning rate, and
    their buffers once flatten() has made them views of one."""

    flat = None  # once flatten(): ([the parameters' buffer], [the gradients' buffer])
    state_names = ()  # the rule's state: lists of tensors, one per parameter (or buffer)

    def zero_grad(self):
        if self.flat is not None:  # the gradients stay views of their buffer, at zero
            for p, g in zip(self.params, self._grads):
                p.grad = g
            self.flat[1][0].zero_()
            return
        for p in self.params:
            p.grad = None

    def flatten(self) -> list | None:
        """Make the parameters views of one buffer and their gradients (at zero) views of
        another, so that each step updates the buffer: SGD with momentum takes 3 kernels a
        step, not 3 a parameter (a linear model's Fashion-MNIST epoch of steps at one thread:
        157 against 178 ms, first quartiles of 16 interleaved epochs). Returns the gradients'
        views, for the caller to write in place; None, and nothing changed, where the
        parameters differ in dtype or device or a setting is a tensor of several numbers (a
        stack's, which broadcasts against each parameter's shape)."""
        settings = self.lr, self.weight_decay, getattr(self, "momentum", 0.0)
        kinds = {(p.dtype, p.device) for p in self.params}
        if len(kinds) != 1 or any(isinstance(v, torch.Tensor) and v.dim() for v in settings):
            return None
        buffer = flat.flatten(self.params)
        grad = torch.zeros_like(buffer)
        self._grads = flat.split(grad, self.params)
        for name in self.state_names:
            if getattr(self, name) is not None:
                setattr(self, name, [flat.join(getattr(self, name))])
        self.flat = [buffer], [grad]
        self.zero_grad()
        return self._grads

    def step(self) -> None:
        """Update every parameter by its gradient, in place: the parameters one by one (without
        autograd's record), or once flattened their buffer by the gradients' (plain tensors:
        nothing to record, and no no_grad context to enter, 3 us a step). A gradient set apart
        from the buffer (by autograd after zero_grad, or by hand) is copied in first."""
        if self.flat is None:
            with torch.no_grad():
                return self.update(self.params, [p.grad for p in self.params])
        for p, g in zip(self.params, self._grads):
            if p.grad is not g:
                g.copy_(p.grad)
                p.grad = g
        self.update(*self.flat)

    def _per_parameter(self, state: list) -> list:
        """A state list (velocity, moments) as one tensor a parameter, as state_dict saves it."""
        return state if self.flat is None else flat.split(state[0], self.params)

    def _as_kept(self, state: list) -> list:
        """A saved state list (one tensor a parameter) on the parameters' device and dtype, as
        this optimizer keeps it (one buffer once flattened)."""
        state = [v.to(p.device, p.dtype) for v, p in zip(state, self.params)]
        return state if self.flat is None else [flat.join(state)]

    def set_lr(self, lr) -> None:
        """Set the learning rate (the schedule, each step); in place when it is a tensor."""
        if not isinstance(self.lr, torch.Tensor):
            self.lr = lr
        elif isinstance(lr, torch.Tensor):
            self.lr.copy_(lr)
        else:
            self.lr.fill_(lr)

    def on_device(self, device) -> None:
        """Keep the numbers that change from step to step in device tensors, changed in place
        from now on: a CUDA graph of the step (capture.py) reads them at fixed addresses."""
        self.lr = torch.as_tensor(self.lr, dtype=torch.float32, device=device).clone()


class SGD(_Rule):
    """v <- momentum v + (g + weight_decay w);  w <- w - lr v  (v = g on the first step)."""

    capturable = True  # after its first step, a step is the same kernels with the same tensors
    state_names = ("velocity",)

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        self.params = [p for p in params]
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocity = None

    def state_dict(self) -> dict:
        """What the next steps depend on (for last.pt): the momentum buffers, if any yet."""
        if self.velocity is None:
            return {"velocity": None}
        return {"velocity": [v.clone() for v in self._per_parameter(self.velocity)]}

    def expected_state(self) -> dict:
        """What a saved state must look like (resume checks it): momentum buffers shaped like
        the parameters, or none without momentum."""
        if not _nonzero(self.momentum):
            return {"velocity": None}
        return {"velocity": [p.detach() for p in self.params]}

    def load_state_dict(self, state: dict) -> None:
        velocity = state["velocity"]
        self.velocity = None if velocity is None else self._as_kept(velocity)

    def update(self, params, grads):
        if _nonzero(self.weight_decay):
            grads = [_plus(g, p, self.weight_decay) for g, p in zip(grads, params)]
        if _nonzero(self.momentum):
            if self.velocity is None:  # state: a normal tensor, also made in inference mode
                with torch.inference_mode(False):
                    self.velocity = [g.clone() for g in grads]
            else:
                for v, g in zip(self.velocity, grads):
                    v.mul_(self.momentum).add_(g)
            grads = self.velocity
        scale = -self.lr  # once per step, also when lr is a tensor
        for p, g in zip(params, grads):
            _add_scaled_(p, g, scale)


class Adam(_Rule):
    """m <- b1 m + (1-b1) g;  s <- b2 s + (1-b2) g^2;
    w <- w - lr/(1-b1^t) m / (sqrt(s/(1-b2^t)) + eps)   (weight decay adds weight_decay w to g)."""

    capturable = True  # after on_device, the step count t is a device tensor too
    state_names = ("m", "s")

    def on_device(self, device) -> None:
        super().on_device(device)
        self.t = torch.tensor(float(self.t), device=device)  # counted in place: t += 1

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params = [p for p in params]
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.m = [torch.zeros_like(p) for p in self.params]
        self.s = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def state_dict(self) -> dict:
        """What the next steps depend on (for last.pt): both moments and the step count."""
        m, s = self._per_parameter(self.m), self._per_parameter(self.s)
        return {"m": [v.clone() for v in m], "s": [v.clone() for v in s], "t": int(self.t)}

    def expected_state(self) -> dict:
        return self.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.m, self.s = self._as_kept(state["m"]), self._as_kept(state["s"])
        self.t = int(state["t"])

    def update(self, params, grads):
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1**self.t)
        root_correction = (1 - b2**self.t) ** 0.5  # a tensor too, once t is one (on_device)
        for p, g, m, s in zip(params, grads, self.m, self.s):
            if _nonzero(self.weight_decay):
                g = _plus(g, p, self.weight_decay)
            m.lerp_(g, 1 - b1)
            s.mul_(b2).addcmul_(g, g, value=1 - b2)
            denominator = (s.sqrt() / root_correction).add_(self.eps)
            if isinstance(step_size, torch.Tensor):
                p.sub_(m / denominator * step_size)
            else:
                p.addcdiv_(m, denominator, value=-step_size)


def _betas(key, value):
    if isinstance(value, str) or not hasattr(value, "__len__") or len(value) != 2:
        raise ConfigError(f"{key}={value} must be two numbers in [0, 1), e.g. [0.9,0.999]")
    for b in value:
        number(key, b, low=0, high=1, high_open=True, example="[0.9,0.999]")


# the keys of configs/optim/<name>.yaml, with their types, ranges and defaults
Rate = Annotated[float, rule(number, low=0, low_open=True, high=1e6, example=0.1)]
Decay = Annotated[float, rule(number, low=0, high=100, example=0)]
# cosine: lr decays to 0 over the run; constant: lr throughout
Schedule = Annotated[str, rule(choice, choices=("constant", "cosine"))]


@dataclasses.dataclass
class SGDConfig:
    lr: Rate = 0.1
    momentum: Annotated[float, rule(number, low=0, high=1, high_open=True, example=0.9)] = 0.9
    weight_decay: Decay = 0.0
    schedule: Schedule = "cosine"


@dataclasses.dataclass
class AdamConfig:
    lr: Rate = 0.003
    betas: Annotated[list[float], _betas] = (0.9, 0.999)
    weight_decay: Decay = 0.0
    schedule: Schedule = "cosine"


class Optimizer(NamedTuple):
    rule: type  # the update rule
    config: type  # its config keys


OPTIMIZERS = {"sgd": Optimizer(SGD, SGDConfig), "adam": Optimizer(Adam, AdamConfig)}


def check_optim(cfg) -> None:
    """Refuse an unknown optimizer, an unknown key or an out-of-range setting before any work."""
    name = choice("optim.name", cfg.get("name"), OPTIMIZERS)
    schema.check_values("optim", OPTIMIZERS[name].config, cfg)


def build_optimizer(cfg, params, total_steps: int):
    """(optimizer, schedule) where schedule(step) sets optimizer.lr for that step (0-based).
    cfg: name, lr and the rule's settings (numbers, or tensors that broadcast against every
    parameter), checked already (check_optim)."""
    params = list(params)
    update = OPTIMIZERS[cfg["name"]].rule
    # a key cfg leaves out takes the rule's own default, as torch.optim's would (a config
    # Hydra composed has every key: SGDConfig / AdamConfig)
    settings = {k: v for k, v in cfg.items() if k not in ("name", "lr", "schedule")}
    if "betas" in settings:
        settings["betas"] = tuple(settings["betas"])
    lr = cfg["lr"]
    optimizer = update(params, lr, **settings)
    if isinstance(lr, torch.Tensor):  # set in place by the schedule; `lr` stays the start
        optimizer.lr = lr.to(dtype=params[0].dtype, copy=True)

    def cosine(step):
        optimizer.set_lr(lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps)))

    def constant(step):
        pass

    return optimizer, cosine if cfg.get("schedule") == "cosine" else constant
