"""Synthetic data sets: Gaussian blobs (nearly separable) and XOR (no line separates it).

Both are drawn on the CPU from their own `seed` with a private torch.Generator, so the same
config gives bit-identical data on every device and for every training seed.

Example:
    >>> from mlrefresh.data.synthetic import blobs
    >>> x_train, y_train, x_val, y_val = blobs(num_classes=3, num_features=2, n_train=90)
    >>> x_train.shape, y_train.bincount().tolist()
    (torch.Size([90, 2]), [30, 30, 30])
"""

import math

import torch

from mlrefresh.errors import ConfigError

__all__ = ["blobs", "xor"]

# Neighbouring blob centres sit this many units apart: 5 standard deviations at std=1.
_SEPARATION = 5.0


def _check_sizes(n_train, n_val, std):
    if n_train < 1 or n_val < 1:
        raise ConfigError(
            f"dataset.n_train={n_train}, dataset.n_val={n_val}: both must be at least 1"
        )
    if not std > 0:
        raise ConfigError(f"dataset.std={std} must be positive (it is the cluster spread)")


def _balanced_labels(n, num_classes, gen):
    """n labels, as equal in count as n allows, in random order."""
    labels = torch.arange(n) % num_classes
    return labels[torch.randperm(n, generator=gen)]


def _draw(centres, labels_of_centre, n, std, gen):
    which = _balanced_labels(n, len(centres), gen)
    x = centres[which] + std * torch.randn(n, centres.shape[1], generator=gen)
    return x, labels_of_centre[which]


def blobs(num_classes=2, num_features=2, n_train=1000, n_val=1000, std=1.0, seed=0):
    """`num_classes` Gaussian clusters of spread `std`, centres on a circle in the first two
    features (on a line when num_features=1), neighbours 5 units apart."""
    _check_sizes(n_train, n_val, std)
    if num_classes < 2:
        raise ConfigError(f"dataset.num_classes={num_classes}: blobs need at least 2 classes")
    if num_features < 1:
        raise ConfigError(f"dataset.num_features={num_features} must be at least 1")
    centres = torch.zeros(num_classes, num_features)
    if num_features == 1:
        centres[:, 0] = _SEPARATION * (torch.arange(num_classes) - (num_classes - 1) / 2)
    else:
        radius = _SEPARATION / (2 * math.sin(math.pi / num_classes))
        angle = 2 * math.pi * torch.arange(num_classes) / num_classes
        centres[:, 0], centres[:, 1] = radius * angle.cos(), radius * angle.sin()
    gen = torch.Generator().manual_seed(seed)
    classes = torch.arange(num_classes)
    return (*_draw(centres, classes, n_train, std, gen), *_draw(centres, classes, n_val, std, gen))


def xor(n_train=1000, n_val=1000, std=0.5, seed=0):
    """Four clusters at (+-1.5, +-1.5), labelled 1 where exactly one coordinate is positive."""
    _check_sizes(n_train, n_val, std)
    corners = 1.5 * torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1, 0])
    gen = torch.Generator().manual_seed(seed)
    return (*_draw(corners, labels, n_train, std, gen), *_draw(corners, labels, n_val, std, gen))
