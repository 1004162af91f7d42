"""Tensors kept as views of one buffer, so that an update rule can touch them all at once.

A linear model has two parameters (weight and bias); plain SGD with momentum costs 3 kernel
launches a parameter a step, and on the CPU each launch of a small kernel costs more than its
arithmetic. With the parameters as views of one buffer, and their gradients as views of another,
a step updates the buffer: 3 launches whatever the number of parameters. The numbers do not
change: an elementwise update gives each element the same bits wherever it lies in a buffer
(tests/test_optim.py checks the rules both ways).

`flatten(tensors)` moves each tensor into one new buffer (`Tensor.set_`: the tensor, a Parameter
say, stays the same object, now a view); `split(buffer, like)` gives a buffer's views shaped as
`like`; `join(tensors)` copies tensors into one new buffer.

Example:
    >>> import torch
    >>> from mlrefresh.flat import flatten
    >>> w, b = torch.ones(2, 3), torch.zeros(2)
    >>> buffer = flatten([w, b])
    >>> _ = buffer.add_(1.0)  # w and b are views of the buffer now
    >>> w.tolist(), b.tolist()
    ([[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]], [1.0, 1.0])
"""

import torch

__all__ = ["flatten", "join", "split"]


def join(tensors) -> torch.Tensor:
    """One new 1-D buffer holding the tensors' elements one tensor after the other."""
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def split(buffer: torch.Tensor, like) -> list:
    """Views of `buffer` shaped as the tensors `like`, in order (as join laid them out)."""
    views, start = [], 0
    for t in like:
        views.append(buffer[start : start + t.numel()].view(t.shape))
        start += t.numel()
    return views


@torch.no_grad()
def flatten(tensors) -> torch.Tensor:
    """Put the tensors (one dtype, one device) into one new buffer, each tensor (the same object:
    a Parameter stays the model's) now a view of it with its own values. Returns the buffer."""
    tensors = list(tensors)
    buffer = join(tensors)
    for t, view in zip(tensors, split(buffer, tensors)):
        t.set_(view)
    return buffer
