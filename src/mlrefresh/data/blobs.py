"""Blobs: `num_classes` Gaussian clusters, nearly separable, with optional outliers.

Centres lie on a circle in the first two features (on a line when num_features=1), neighbours
5 units apart. `outliers` extra training points of the last class lie `outlier_distance` units
beyond its centre, away from the others: far out on the correct side, the slide's "for t = 1
the square loss is higher at y = 10 than at y = 0". The validation set has none.

Example:
    >>> from mlrefresh.data.blobs import blobs
    >>> ds = blobs(num_classes=3, n_train=90)
    >>> ds.x_train.shape, ds.y_train.bincount().tolist()
    (torch.Size([90, 2]), [30, 30, 30])
"""

import math
from typing import Annotated

import torch

from mlrefresh.checks import number, rule, whole
from mlrefresh.data.dataset import Dataset, dataset
from mlrefresh.data.synthetic import Seed, Size, Spread, draw, generated, mixture_posterior
from mlrefresh.errors import ConfigError

__all__ = ["blobs"]

_SEPARATION = 5.0  # between neighbouring centres: 5 standard deviations at std=1
_MAX_ELEMENTS = 2**30  # 4 GiB of float32: more generated data than a refresher needs


def _centres(num_classes, num_features):
    centres = torch.zeros(num_classes, num_features)
    if num_features == 1:
        centres[:, 0] = _SEPARATION * (torch.arange(num_classes) - (num_classes - 1) / 2)
    else:
        radius = _SEPARATION / (2 * math.sin(math.pi / num_classes))
        angle = 2 * math.pi * torch.arange(num_classes) / num_classes
        centres[:, 0], centres[:, 1] = radius * angle.cos(), radius * angle.sin()
    return centres


def _not_too_big(o) -> None:
    elements = (o["n_train"] + o["n_val"] + o["outliers"]) * o["num_features"]
    if elements > _MAX_ELEMENTS:
        raise ConfigError(
            f"dataset blobs: (n_train + n_val) x num_features = {elements:,} numbers, more "
            f"than {_MAX_ELEMENTS:,} (4 GiB); lower dataset.n_train or dataset.num_features"
        )


@dataset(num_classes=lambda o: o["num_classes"], check=_not_too_big)
def blobs(
    num_classes: Annotated[int, rule(whole, low=2, high=10_000)] = 2,  # > 2 needs model=softmax
    num_features: Annotated[int, rule(whole, low=1, high=1_000_000)] = 2,
    n_train: Size = 1000,
    n_val: Size = 1000,
    std: Spread = 1.0,  # cluster spread; neighbouring centres are 5 apart
    seed: Seed = 0,  # the data's own seed, independent of the training seed
    outliers: Annotated[int, rule(whole, low=0, high=1_000_000)] = 0,
    outlier_distance: Annotated[float, rule(number, low=0, high=1e6, example=20)] = 20.0,
    *,
    device="cpu",
) -> Dataset:
    centres = _centres(num_classes, num_features)
    gen = torch.Generator().manual_seed(seed)
    classes = torch.arange(num_classes)
    x_train, y_train = draw(centres, classes, n_train, std, gen)
    x_val, y_val = draw(centres, classes, n_val, std, gen)
    about = (
        f"blobs: {num_classes} Gaussian clusters in {num_features}-D, std {std}, "
        f"{n_train} train / {n_val} val, seed {seed}"
    )
    if outliers:
        away = centres[-1] - centres.mean(0)
        far = centres[-1] + outlier_distance * away / away.norm()
        x_out = far + std * torch.randn(outliers, num_features, generator=gen)
        x_train = torch.cat([x_train, x_out])
        y_train = torch.cat([y_train, torch.full((outliers,), num_classes - 1)])
        about += f", {outliers} outliers {outlier_distance} beyond the last class"

    def posterior(x):  # exact for the Gaussian clusters; outliers are not part of that model
        return mixture_posterior(x, centres, classes, num_classes, std)

    tensors = (x_train, y_train, x_val, y_val)
    return generated("blobs", tensors, num_classes, about, posterior, device)
