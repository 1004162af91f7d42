"""Output units: the function that turns logits z = w^T x + b into the model's prediction y.

| unit      | y                   | dy/dz                              | class 1 at | pairs with |
|-----------|---------------------|------------------------------------|------------|------------|
| sigmoid   | 1 / (1 + e^-z)      | y (1 - y): vanishes when saturated | z >= 0     | square, ce |
| softmax   | e^z_k / sum_j e^z_j | diag(y) - y y^T                    | (argmax)   | square, ce |
| identity  | z                   | 1                                  | z >= 1/2   | square     |
| clamped   | max(0, min(1, z))   | 1 inside [0, 1], 0 outside         | z >= 1/2   | square     |

Each is a `Unit`: its function; `log_probs`, the log-probability of every class from the logits
(computed from z, exact where y rounds to 0 or 1; None: y is not a probability, so there is no
NLL and no cross-entropy); and `half_at`, the logit where a one-output unit's y crosses 1/2, the
decision threshold a one-output model reads (None: the unit has none; a model with one output
through it is refused). Cross-entropy is computed from the logits of the sigmoid and softmax
units (losses.py); square loss works with every unit. Autograd differentiates these units, so
square loss through sigmoid gets the lecture's saturation factor y (1 - y) for free.

Adding a unit: a `Unit` in UNITS (docs/extending.md has a probit unit as the example).

Example:
    >>> import torch
    >>> from mlrefresh.units import UNITS
    >>> UNITS["clamped"](torch.tensor([-2.0, 0.25, 3.0]))
    tensor([0.0000, 0.2500, 1.0000])
    >>> UNITS["sigmoid"].half_at, UNITS["identity"].log_probs is None
    (0.0, True)
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["UNITS", "Unit", "clamped", "identity", "sigmoid", "softmax", "two_classes"]


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    """Logistic unit, the probability of class 1 for a one-output model."""
    return torch.sigmoid(z)


def softmax(z: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, the class probabilities of a K-output model."""
    return torch.softmax(z, dim=-1)


def identity(z: torch.Tensor) -> torch.Tensor:
    """Linear unit: y = z, not a probability."""
    return z


def clamped(z: torch.Tensor) -> torch.Tensor:
    """max(0, min(1, z)): passes no gradient for z outside [0, 1] ("no more gradients"), and
    dy/dz = 1 on [0, 1], its ends included. Not z.clamp(0, 1) alone: torch 2.14 made clamp's
    gradient 0 at the ends (2.13: 1), and a model that starts at z = 0 would never move."""
    inside = (z >= 0) & (z <= 1)
    return torch.where(inside, z, z.detach().clamp(0.0, 1.0))


def two_classes(log_p1: Callable) -> Callable:
    """log_probs of a one-output unit from log p(class 1 | z): columns [log p(0), log p(1)],
    with p(0 | z) = p(1 | -z) (a unit symmetric about its threshold 0)."""
    return lambda z: torch.stack([log_p1(-z), log_p1(z)], dim=1)


@dataclass(frozen=True)
class Unit:
    """An output unit: y = unit(z), and what the loop, the metrics and the pictures read."""

    function: Callable  # z -> y
    log_probs: Callable | None  # z -> [N, K] log p(class k | z), or None: y is no probability
    half_at: float | None  # one output: class 1 when z >= half_at (y >= 1/2), or None

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.function(z)


UNITS = {
    "sigmoid": Unit(sigmoid, two_classes(F.logsigmoid), half_at=0.0),
    "softmax": Unit(softmax, lambda z: torch.log_softmax(z, dim=1), half_at=None),
    "identity": Unit(identity, None, half_at=0.5),
    "clamped": Unit(clamped, None, half_at=0.5),
}
