"""XOR: four clusters at (+-1.5, +-1.5), labelled 1 where exactly one coordinate is positive.
No line separates the classes: the lecture's case for a hidden layer (model=mlp).

This file is all a generated data set needs (with configs/dataset/xor.yaml): the loader's
keyword options, annotated with their ranges, are the config's keys (schema.py).

Example:
    >>> from mlrefresh.data.xor import xor
    >>> ds = xor(n_train=200, seed=1)
    >>> ds.x_train.shape, ds.y_train.bincount().tolist()
    (torch.Size([200, 2]), [100, 100])
"""

import torch

from mlrefresh.data.dataset import Dataset, dataset
from mlrefresh.data.synthetic import Seed, Size, Spread, draw, generated, mixture_posterior

__all__ = ["xor"]

_CORNERS = 1.5 * torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
_LABELS = torch.tensor([0, 1, 1, 0])


@dataset(num_classes=2)
def xor(
    n_train: Size = 1000, n_val: Size = 1000, std: Spread = 0.5, seed: Seed = 0, *, device="cpu"
) -> Dataset:
    gen = torch.Generator().manual_seed(seed)
    tensors = (
        *draw(_CORNERS, _LABELS, n_train, std, gen),
        *draw(_CORNERS, _LABELS, n_val, std, gen),
    )
    about = (
        f"xor: 4 clusters at (+-1.5, +-1.5) labelled by XOR, std {std}, "
        f"{n_train} train / {n_val} val, seed {seed}"
    )

    def posterior(x):  # a mixture of two clusters per class: exact
        return mixture_posterior(x, _CORNERS, _LABELS, 2, std)

    return generated("xor", tensors, 2, about, posterior, device)
