"""One epoch of training, for one model or for M stacked models: the steps, then the metrics.

The same code trains an ordinary run (one model, inputs [B, D]) and a stacked sweep (M models
of one shape made into one by models.stack_models, inputs [M, B, D]): each model has its own
batch order (perm [N] or [M, N]), `x[idx]` gathers each model's batch, the objective sums the
models' mean losses, the optimizer updates every model with its own settings. The step loop
keeps the logits it computed (and the gradient norms) on the device and never waits for it: no
.item(), no host sync. At the end of the epoch every metric is computed from those logits, as
seen during the epoch's steps, and from one pass over the validation set, for each model; the
caller reads them all in one sync.

Example (two logistic regressions, each its own batch order):
    >>> import torch
    >>> from mlrefresh.models import build_model, stack_models
    >>> from mlrefresh.objective import Objective
    >>> from mlrefresh.optim import build_optimizer
    >>> from mlrefresh.epoch import make_step, train_epoch
    >>> model = stack_models([build_model("logistic", 2, 2) for _ in range(2)])
    >>> objective = Objective("ce", model)
    >>> sgd = [{"name": "sgd", "lr": 0.1}] * 2  # per model: lr, momentum, weight decay
    >>> optimizer, schedule = build_optimizer(sgd, model.parameters(), total_steps=1)
    >>> x, t = torch.randn(8, 2), torch.tensor([0.0, 1.0] * 4)
    >>> perm = torch.stack([torch.randperm(8), torch.randperm(8)])
    >>> step = make_step(model, objective, optimizer, x, t, stacked=True)
    >>> z, t_seen, norms = train_epoch(step, schedule, t, 4, perm, step0=0)
    >>> z.shape, t_seen.shape, len(norms)
    (torch.Size([2, 8]), torch.Size([2, 8]), 2)
"""

import torch

from mlrefresh.diagnostics import gradient_diagnostics, likelihood_diagnostics
from mlrefresh.runs import signals

__all__ = ["epoch_metrics", "grad_norms", "log_line", "make_step", "step_norms", "train_epoch"]


def grad_norms(params, stacked: bool) -> list[torch.Tensor]:
    """The norm of each parameter's gradient: 0-dim (one kernel launch for all), or [M] for
    stacked parameters (one norm per model)."""
    grads = [p.grad for p in params]
    if not stacked:
        return torch._foreach_norm(grads)
    return [torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads]


def _rows(a: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """a[idx] for an index of any shape ([B], or [M, B]: a batch per model): index_select on
    the flattened index, 2.5x faster on the CPU than advanced indexing with a 2-D index."""
    return torch.index_select(a, 0, idx.reshape(-1)).view(*idx.shape, *a.shape[1:])


def make_step(model, objective, optimizer, x, t, stacked: bool, same_rows: int = 1):
    """step(idx): one training step on the rows idx ([B], or [M, B]) of (x, t): forward, the
    loss, its backward, the gradient norms, the update. Returns the (detached) logits and the
    norms. capture.GraphedStep replays the same function as a CUDA graph. same_rows = r: each r
    consecutive models have the same batches (the same seed): their inputs are read once."""
    params = list(model.parameters())

    def step(idx):
        z = model(_rows(x, idx[::same_rows] if same_rows > 1 else idx))
        loss = objective.loss(z, _rows(t, idx))
        optimizer.zero_grad()
        loss.backward()
        norms = grad_norms(params, stacked)
        optimizer.step()
        return z.detach(), norms

    return step


def train_epoch(step, schedule, t, batch_size, perm, step0):
    """One pass in the order `perm` ([N], or [M, N] for stacked models), step (make_step) by
    step, the schedule setting each step's learning rate first. Returns what the epoch's
    metrics are computed from: the logits of every step, the targets t in the same order, and
    per-step gradient norms; or None when a signal asked to stop. Keeping the logits costs
    N x K floats per model and epoch (2.4 MB for MNIST)."""
    logits, norms = [], []
    for i, idx in enumerate(perm.split(min(batch_size, perm.shape[-1]), dim=-1)):
        if signals.pending() is not None:  # Ctrl-C or SIGTERM: stop at this step boundary
            return None
        schedule(step0 + i)
        z, step_norms = step(idx)
        logits.append(z)
        norms.append(step_norms)
    return torch.cat(logits, dim=perm.dim() - 1), _rows(t, perm), norms


def step_norms(norms) -> torch.Tensor:
    """The gradient norms train_epoch kept, as one tensor [steps, parameters, M] (M = 1 for
    one model): model m's are [..., m]."""
    return torch.stack([g for step in norms for g in step]).view(len(norms), len(norms[0]), -1)


@torch.no_grad()
def epoch_metrics(objective, z_train, t_train, per_step, z_val, t_val, p_val) -> dict:
    """Every metric of one model's epoch as 0-dim device tensors (read by the caller in one
    sync). per_step: [steps, parameters] gradient norms (step_norms). p_val: the true p(y|x) of
    the validation inputs (generated data), or None."""
    metrics = {}
    for split, z, t in (("train", z_train, t_train), ("val", z_val, t_val)):
        metrics[f"loss/{split}"] = objective.loss(z, t)
        metrics[f"accuracy/{split}"] = objective.correct(z, t) / len(t)
        if objective.loss_is_nll:  # cross-entropy: the loss is the NLL already
            metrics[f"nll/{split}"] = metrics[f"loss/{split}"]
        elif objective.has_nll:
            metrics[f"nll/{split}"] = objective.nll(z, t)
    metrics["grad_norm"] = per_step.square().sum(1).sqrt().mean()  # mean over steps of |grad|
    metrics.update(gradient_diagnostics(objective, z_train, t_train))
    if p_val is not None and objective.has_nll:
        metrics.update(likelihood_diagnostics(objective, z_val, p_val))
    return metrics


def log_line(epoch, epochs, m) -> str:
    """The log line of an epoch, from its metrics (numbers)."""
    line = f"epoch {epoch}/{epochs}  loss {m['loss/train']:.4f}/{m['loss/val']:.4f}"
    line += f"  acc {m['accuracy/train']:.2%}/{m['accuracy/val']:.2%}"
    if "nll/val" in m:
        line += f"  nll {m['nll/train']:.4f}/{m['nll/val']:.4f}"
    line += f" (train/val)  |grad| {m['grad_norm']:.3g}  |dL/dz| {m['diag/dz_abs']:.3g}"
    line += f"  stalled {m['diag/stalled']:.0%}"
    if "kl/val" in m:
        line += f"  kl/val {m['kl/val']:.4f}"
    return line
