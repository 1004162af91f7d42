"""One epoch of training for one model: the steps, then the metrics.

Each epoch has its own batch order `perm`; `x[idx]` gathers a batch (image pixels as bytes),
the objective's loss is differentiated by the loss Function's own backward (for a linear model
and a loss on its logits, by the same formula without autograd: linear_step), the optimizer
updates. The step loop keeps the logits it computed (and the gradient norms) on the device and
never waits for them: no .item(), no host sync. At the end of the epoch every metric is
computed from those logits, as seen during the epoch's steps, and from one pass over the
validation set; the caller reads them all in one sync.

Example:
    >>> import torch
    >>> from mlrefresh.models import build_model
    >>> from mlrefresh.objective import Objective
    >>> from mlrefresh.optim import build_optimizer
    >>> from mlrefresh.epoch import make_step, train_epoch
    >>> model = build_model("logistic", 2, 2)
    >>> objective = Objective("ce", model)
    >>> optimizer, schedule = build_optimizer({"name": "sgd", "lr": 0.1}, model.parameters(), 1)
    >>> x, t = torch.randn(8, 2), torch.tensor([0.0, 1.0] * 4)
    >>> step = make_step(model, objective, optimizer, x, t)
    >>> z, t_seen, norms = train_epoch(step, schedule, t, 4, torch.randperm(8), step0=0)
    >>> z.shape, t_seen.shape, len(norms)
    (torch.Size([8]), torch.Size([8]), 2)
"""

import torch

from mlrefresh.data.dataset import from_bytes
from mlrefresh.diagnostics import gradient_diagnostics, likelihood_diagnostics, loss_and_dz
from mlrefresh.models import LinearModel, affine

__all__ = ["autograd_step", "batch", "epoch_metrics", "grad_norms", "linear_step", "log_line",
           "make_step", "rows", "step_norms", "train_epoch", "written_out"]  # fmt: skip


def rows(a: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """a[idx] for an index of any shape: index_select on the flattened index, 2.5x faster on
    the CPU than advanced indexing with a 2-D index. A run alone's 1-D index goes straight to
    index_select (the reshape and view cost 5 us of Python a call, two calls a step)."""
    if idx.dim() == 1:
        return torch.index_select(a, 0, idx)
    return torch.index_select(a, 0, idx.reshape(-1)).view(*idx.shape, *a.shape[1:])


def batch(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The inputs x[idx] of a step: x is float features, or an image set's uint8 pixels
    (Dataset.train_bytes), gathered as bytes and converted as the loader converted x_train:
    the same floats, from a quarter of the memory traffic (71 against 34 us a 128-row batch of
    Fashion-MNIST at one thread, conversion included)."""
    return from_bytes(rows(x, idx)) if x.dtype == torch.uint8 else rows(x, idx)


def make_step(model, objective, optimizer, x, t):
    """step(idx): one training step on the rows idx of (x, t) (x: Dataset.step_inputs):
    forward, the loss, its backward, the gradient norms, the update. Returns the (detached)
    logits and the norms (one 0-dim tensor per parameter). A linear model with a loss on its
    logits takes linear_step, the same step written out. capture.GraphedStep replays either
    as a CUDA graph."""
    if written_out(model, objective):
        return linear_step(model, objective, optimizer, x, t)
    return autograd_step(model, objective, optimizer, x, t)


def written_out(model, objective) -> bool:
    """Whether the step can be written out: a linear model with LinearModel's own forward and
    layer (one with a forward or layer of its own keeps autograd; a stack of models,
    sweeps/stacked_model.py, is judged by the class it stacks) and a loss that gives its
    gradient on the logits."""
    kind = getattr(type(model), "stacks", type(model))
    linear = isinstance(model, LinearModel) and kind.forward is LinearModel.forward
    return linear and kind.layer is LinearModel.layer and objective.function is not None


def autograd_step(model, objective, optimizer, x, t):
    """make_step's step for any model and loss: the loss's backward through autograd."""
    params = list(model.parameters())

    def step(idx):
        z = model(batch(x, idx))
        loss = objective.loss(z, rows(t, idx))
        optimizer.zero_grad()
        loss.backward()
        norms = grad_norms(params)
        optimizer.step()
        return z.detach(), norms

    return step


def grad_norms(params) -> list:
    """|grad| of each parameter, as 0-dim device tensors (no host sync)."""
    return [torch.linalg.vector_norm(p.grad) for p in params]


def linear_step(model, objective, optimizer, x, t):
    """make_step's step for a linear model (z = W x + b) and a loss on its logits, written out:
    dL/dz from the loss Function's own backward (called without autograd, and without the loss
    value, which the step does not need: loss_plumbing.backward_alone), then dW = dz^T x and
    db = the sum of dz's rows, written into the optimizer's one buffer of gradients
    (optim._Rule.flatten: the update is then a few kernels on one buffer). The numbers are
    autograd's to the last bit (tests/test_steps.py); the step is half the kernel launches and
    none of autograd's bookkeeping (a Fashion-MNIST epoch of steps at one thread, both reading
    bytes: 101 ms against 134 with autograd's step).

    The step computes on plain tensors that share the parameters' memory (Tensor.detach):
    the forward is LinearModel's (models.affine, then one output squeezed), without the
    Module's call and without autograd's record, so without a no_grad context to enter either
    (a Fashion-MNIST epoch of steps at one thread: 126-136 against 155-159 ms, the fastest
    of 11 epochs in 3 alternating processes). Module hooks do not run in it, as the parameters'
    gradient hooks never did: a model that needs them overrides forward (written_out).
    With the project's own update rules, train_epoch runs the step in torch.inference_mode:
    the tensors it makes skip autograd's bookkeeping altogether (version counters, views'
    records), the same kernels (a Fashion-MNIST epoch of steps at one thread: 149-152 against
    160-163 ms, medians of 16 rounds alternating in one process, 2026-12-06).
    What outlives the epoch is a normal tensor: train_epoch joins the logits and step_norms the
    norms after it, the optimizer's state and the one-hot cache are made with the mode off."""
    params = weight, bias = model.linear.weight, model.linear.bias
    flatten = getattr(optimizer, "flatten", None)  # optim.py's rules; torch.optim's have none
    grads = flatten() if flatten is not None else None  # [dW, db] views of one buffer, or None
    w, b = weight.detach(), bias.detach()  # after flatten: views of its buffer
    one = torch.ones((), dtype=w.dtype, device=w.device)  # dL/dL
    binary = model.binary

    def step(idx):
        inputs = batch(x, idx)
        z = affine(inputs, w, b)
        z = z.squeeze(-1) if binary else z  # LinearModel.forward
        dz = objective.logit_grad(z, rows(t, idx), one)
        dz = dz.unsqueeze(1) if binary else dz  # [B, outputs]
        if grads is None:
            weight.grad, bias.grad = torch.mm(dz.t(), inputs), dz.sum(0)
        else:
            torch.mm(dz.t(), inputs, out=grads[0])
            torch.sum(dz, 0, out=grads[1])
        norms = grad_norms(params)
        optimizer.step()
        return z, norms

    # it records nothing for autograd: train_epoch runs it in inference mode, with the project's
    # own update rules only (torch.optim's would keep state made there: inference tensors)
    step.inference_mode = grads is not None
    return step


def train_epoch(step, schedule, t, batch_size, perm, step0, stop=lambda: False):
    """One pass in the order `perm` (the batches split along its last dimension), step
    (make_step) by step, the schedule setting each step's learning rate first. Returns what the
    epoch's metrics are computed from: the logits of every step, the targets t in the same
    order, and per-step gradient norms; or None when stop() said so at a step boundary (Ctrl-C,
    SIGTERM). Keeping the logits costs N x K floats per epoch (2.4 MB for MNIST). A step that
    says so (`step.inference_mode`: it records nothing for autograd) runs in inference mode;
    its per-step norms are then inference tensors, normal again once stacked (step_norms)."""
    logits, norms = [], []
    with torch.inference_mode(getattr(step, "inference_mode", False)):
        for i, idx in enumerate(perm.split(min(batch_size, perm.shape[-1]), dim=-1)):
            if stop():
                return None
            schedule(step0 + i)
            z, step_norms = step(idx)
            logits.append(z)
            norms.append(step_norms)
    return torch.cat(logits, dim=perm.dim() - 1), rows(t, perm), norms


def step_norms(norms) -> torch.Tensor:
    """The gradient norms train_epoch kept, as one tensor [steps, parameters, ...]: one stack
    of them all (not one per step: 470 calls an epoch of Fashion-MNIST)."""
    return torch.stack([n for step in norms for n in step]).view(
        len(norms), len(norms[0]), *norms[0][0].shape
    )


@torch.no_grad()
def epoch_metrics(objective, z_train, t_train, per_step, z_val, t_val, p_val) -> dict:
    """Every metric of one model's epoch as 0-dim device tensors (read by the caller in one
    sync). per_step: [steps, parameters] gradient norms (step_norms). p_val: the true p(y|x) of
    the validation inputs (generated data), or None."""
    metrics = {}
    loss_train, dz = loss_and_dz(objective, z_train, t_train)  # one forward for both
    decided = objective.model.decide(z_train)  # for the accuracy and diag/stalled
    for split, z, t in (("train", z_train, t_train), ("val", z_val, t_val)):
        train = split == "train"
        metrics[f"loss/{split}"] = loss_train if train else objective.loss(z, t)
        metrics[f"accuracy/{split}"] = objective.correct(z, t, decided if train else None) / len(t)
        if objective.loss_is_nll:  # cross-entropy: the loss is the NLL already
            metrics[f"nll/{split}"] = metrics[f"loss/{split}"]
        elif objective.has_nll:
            metrics[f"nll/{split}"] = objective.nll(z, t)
    metrics["grad_norm"] = per_step.square().sum(1).sqrt().mean()  # mean over steps of |grad|
    metrics.update(gradient_diagnostics(objective, z_train, t_train, dz, decided))
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
