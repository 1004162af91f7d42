"""What explains a learning curve: per-sample gradients at the logits, and likelihood as KL.

Computed once per epoch from tensors the loop already has (the training logits of the epoch's
steps, the validation logits), on the device, and read in the epoch's one host sync:

- `diag/dz_abs`: mean over training samples of |dL_i/dz_i|, the gradient of sample i's own loss
  at its logits (not divided by N): "a small gradient is a small step";
- `diag/stalled`: the fraction of training samples that are misclassified yet have
  |dL_i/dz_i| < 0.01: "really wrong, and a tiny step";
- `diag/dead`: the fraction whose dL_i/dz_i is exactly 0 (the clamped unit outside [0, 1]);
- `entropy/val`, `kl/val`: for generated data, whose true p(y|x) is known, the mean entropy of
  p_true(.|x) and the mean KL(p_true || p_model) over the validation inputs, so that
  nll/val = entropy/val + kl/val up to sampling noise: maximum likelihood is minimum KL.

dL_i/dz_i comes from the loss Function's own backward (losses.py), carried through the output
unit by autograd: the same number the training step uses, times N, for any loss in LOSSES.

Example:
    >>> import torch
    >>> from mlrefresh.models import build_model
    >>> from mlrefresh.objective import Objective
    >>> from mlrefresh.diagnostics import gradient_diagnostics
    >>> model = build_model("logistic", num_features=1, num_classes=2)
    >>> objective = Objective("ce", model)
    >>> z, t = torch.tensor([-10.0, 0.0]), torch.tensor([1.0, 1.0])
    >>> {k: round(v.item(), 3) for k, v in gradient_diagnostics(objective, z, t).items()}
    {'diag/dz_abs': 0.75, 'diag/stalled': 0.0, 'diag/dead': 0.0}
"""

import torch

__all__ = ["STALLED_BELOW", "gradient_diagnostics", "likelihood_diagnostics", "loss_and_dz",
           "per_sample_dz"]  # fmt: skip

STALLED_BELOW = 0.01  # |dL_i/dz_i| under this, for a misclassified sample: "stalled"


def loss_and_dz(objective, z: torch.Tensor, t: torch.Tensor) -> tuple:
    """The mean loss and dL_i/dz_i for every sample ([N] or [N, K]), from one forward and its
    backward: the backward of the mean loss, times N (each sample's loss depends on its own
    logits only), through the unit for a loss on outputs (sigmoid: y(1-y); clamped: 0 outside
    [0, 1])."""
    with torch.enable_grad():
        z = z.detach().requires_grad_()
        loss = objective.loss(z, t)
        (dz,) = torch.autograd.grad(loss, z)
    return loss.detach(), dz * z.shape[0]


def per_sample_dz(objective, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dL_i/dz_i for every sample (loss_and_dz)."""
    return loss_and_dz(objective, z, t)[1]


@torch.no_grad()
def gradient_diagnostics(objective, z: torch.Tensor, t: torch.Tensor, dz=None, decided=None):
    """diag/* as 0-dim tensors, from the training logits z and targets t of an epoch (dz and the
    decided classes: computed here unless the caller has them already)."""
    dz = per_sample_dz(objective, z, t) if dz is None else dz
    size = dz.abs() if dz.dim() == 1 else torch.linalg.vector_norm(dz, dim=1)
    decided = objective.model.decide(z) if decided is None else decided
    wrong = decided != objective.labels(t)
    return {
        "diag/dz_abs": size.mean(),
        "diag/stalled": (wrong & (size < STALLED_BELOW)).float().mean(),
        "diag/dead": (size == 0).float().mean(),
    }


@torch.no_grad()
def likelihood_diagnostics(objective, z_val: torch.Tensor, p_true: torch.Tensor) -> dict:
    """entropy/val and kl/val (nats) from the model's validation logits and the true posterior
    p_true [N, K] of the validation inputs."""
    log_q = objective.log_probs(z_val)  # [N, K]
    log_p = torch.log(p_true.clamp_min(1e-300)).to(log_q.dtype)
    p = p_true.to(log_q.dtype)
    entropy = -(p * log_p).sum(1).where(p.sum(1) > 0, 0.0)
    kl = (p * (log_p - log_q)).where(p > 0, 0.0).sum(1)
    return {"entropy/val": entropy.mean(), "kl/val": kl.mean()}
