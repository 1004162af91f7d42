"""What the generated data sets share: option types, balanced draws around centres, and the
exact posterior of a mixture of equal Gaussian clusters.

A generated data set (blobs.py, xor.py) is drawn on the CPU from its own `seed` with a private
torch.Generator, so the same config gives bit-identical data on every device and for every
training seed; `generated(...)` moves it to the device as a Dataset.

Example:
    >>> import torch
    >>> from mlrefresh.data.synthetic import draw
    >>> gen = torch.Generator().manual_seed(0)
    >>> x, y = draw(torch.zeros(3, 2), torch.arange(3), 90, 1.0, gen)
    >>> x.shape, y.bincount().tolist()
    (torch.Size([90, 2]), [30, 30, 30])
"""

from typing import Annotated

import torch

from mlrefresh.checks import MAX_SEED, number, rule, whole
from mlrefresh.data.dataset import Dataset

__all__ = ["Seed", "Size", "Spread", "draw", "generated", "mixture_posterior"]

# the options every generated data set takes (their types, ranges and examples written once)
Size = Annotated[int, rule(whole, low=1, high=100_000_000)]  # n_train, n_val
Spread = Annotated[float, rule(number, low=0, low_open=True, high=1e6, example=1.0)]  # std
Seed = Annotated[int, rule(whole, low=0, high=MAX_SEED)]  # the data's own seed


def _balanced_labels(n, num_classes, gen):
    """n labels, as equal in count as n allows, in random order."""
    labels = torch.arange(n) % num_classes
    return labels[torch.randperm(n, generator=gen)]


def draw(centres, labels_of_centre, n, std, gen):
    """n points around `centres` (as many per centre as n allows), of spread std, with the
    label of their centre."""
    which = _balanced_labels(n, len(centres), gen)
    x = centres[which] + std * torch.randn(n, centres.shape[1], generator=gen)
    return x, labels_of_centre[which]


def mixture_posterior(x, centres, labels, num_classes, std):
    """p(y|x) for equally likely Gaussian clusters of one spread `std`, cluster j of class
    labels[j]: a softmax over the clusters' log-densities, summed per class."""
    sq = torch.cdist(x.double(), centres.double().to(x.device)).square()
    log_w = torch.log_softmax(-sq / (2 * std**2), dim=1)  # [N, clusters]
    per_class = torch.full((len(x), num_classes), float("-inf"), dtype=torch.float64,
                           device=x.device)  # fmt: skip
    for c in range(num_classes):
        per_class[:, c] = torch.logsumexp(log_w[:, labels.to(x.device) == c], dim=1)
    return per_class.exp()


def generated(name, tensors, num_classes, description, posterior, device) -> Dataset:
    """The Dataset of four CPU tensors (x_train, y_train, x_val, y_val), on `device`."""
    return Dataset(name, *(t.to(device) for t in tensors), num_classes, description, posterior)
