"""Output units: the function that turns logits z = w^T x + b into the model's prediction y.

| unit      | y                   | dy/dz                            | pairs with      |
|-----------|---------------------|----------------------------------|-----------------|
| sigmoid   | 1 / (1 + e^-z)      | y (1 - y): vanishes when saturated | square, ce      |
| softmax   | e^z_k / sum_j e^z_j | diag(y) - y y^T                  | square, ce      |
| identity  | z                   | 1                                | square          |
| clamped   | max(0, min(1, z))   | 1 inside [0, 1], 0 outside       | square          |

Cross-entropy needs a probability, so it pairs only with sigmoid and softmax; square loss
works with every unit. Autograd differentiates these units, so square loss through sigmoid
gets the lecture's saturation factor y (1 - y) for free.

Example:
    >>> import torch
    >>> from mlrefresh.units import UNITS
    >>> UNITS["clamped"](torch.tensor([-2.0, 0.25, 3.0]))
    tensor([0.0000, 0.2500, 1.0000])
"""

import torch

__all__ = ["sigmoid", "softmax", "identity", "clamped", "UNITS", "PROBABILISTIC_UNITS"]


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
    """max(0, min(1, z)): passes no gradient for z outside [0, 1] ("no more gradients")."""
    return z.clamp(0.0, 1.0)


UNITS = {"sigmoid": sigmoid, "softmax": softmax, "identity": identity, "clamped": clamped}

# Units whose output is a probability: cross-entropy and the NLL metric apply to these only.
PROBABILISTIC_UNITS = frozenset({"sigmoid", "softmax"})
