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

__all__ = ["blobs", "blobs_posterior", "xor", "xor_posterior"]

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


def _centres(num_classes, num_features):
    centres = torch.zeros(num_classes, num_features)
    if num_features == 1:
        centres[:, 0] = _SEPARATION * (torch.arange(num_classes) - (num_classes - 1) / 2)
    else:
        radius = _SEPARATION / (2 * math.sin(math.pi / num_classes))
        angle = 2 * math.pi * torch.arange(num_classes) / num_classes
        centres[:, 0], centres[:, 1] = radius * angle.cos(), radius * angle.sin()
    return centres


def blobs(num_classes=2, num_features=2, n_train=1000, n_val=1000, std=1.0, seed=0, outliers=0,
          outlier_distance=20.0):  # fmt: skip
    """`num_classes` Gaussian clusters of spread `std`, centres on a circle in the first two
    features (on a line when num_features=1), neighbours 5 units apart.

    `outliers` extra training points of the last class, `outlier_distance` units beyond its
    centre, away from the others: far out on the correct side, the slide's "for t = 1 the
    square loss is higher at y = 10 than at y = 0". The validation set has none."""
    _check_sizes(n_train, n_val, std)
    if num_classes < 2:
        raise ConfigError(f"dataset.num_classes={num_classes}: blobs need at least 2 classes")
    if num_features < 1:
        raise ConfigError(f"dataset.num_features={num_features} must be at least 1")
    centres = _centres(num_classes, num_features)
    gen = torch.Generator().manual_seed(seed)
    classes = torch.arange(num_classes)
    x_train, y_train = _draw(centres, classes, n_train, std, gen)
    x_val, y_val = _draw(centres, classes, n_val, std, gen)
    if outliers:
        away = centres[-1] - centres.mean(0)
        far = centres[-1] + outlier_distance * away / away.norm()
        x_out = far + std * torch.randn(outliers, num_features, generator=gen)
        x_train = torch.cat([x_train, x_out])
        y_train = torch.cat([y_train, torch.full((outliers,), num_classes - 1)])
    return x_train, y_train, x_val, y_val


def _posterior(x, centres, labels, num_classes, std):
    """p(y|x) for equally likely Gaussian clusters of one spread `std`, cluster j of class
    labels[j]: a softmax over the clusters' log-densities, summed per class."""
    sq = torch.cdist(x.double(), centres.double().to(x.device)).square()
    log_w = torch.log_softmax(-sq / (2 * std**2), dim=1)  # [N, clusters]
    per_class = torch.full((len(x), num_classes), float("-inf"), dtype=torch.float64,
                           device=x.device)  # fmt: skip
    for c in range(num_classes):
        per_class[:, c] = torch.logsumexp(log_w[:, labels.to(x.device) == c], dim=1)
    return per_class.exp()


def blobs_posterior(x, num_classes=2, num_features=2, std=1.0, **_):
    """The true p(y|x) of blobs (equal class sizes): exact."""
    centres = _centres(num_classes, num_features)
    return _posterior(x, centres, torch.arange(num_classes), num_classes, std)


_CORNERS = 1.5 * torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
_XOR_LABELS = torch.tensor([0, 1, 1, 0])


def xor(n_train=1000, n_val=1000, std=0.5, seed=0):
    """Four clusters at (+-1.5, +-1.5), labelled 1 where exactly one coordinate is positive."""
    _check_sizes(n_train, n_val, std)
    corners, labels = _CORNERS, _XOR_LABELS
    gen = torch.Generator().manual_seed(seed)
    return (*_draw(corners, labels, n_train, std, gen), *_draw(corners, labels, n_val, std, gen))


def xor_posterior(x, std=0.5, **_):
    """The true p(y|x) of xor: a mixture of two clusters per class, exact."""
    return _posterior(x, _CORNERS, _XOR_LABELS, 2, std)
