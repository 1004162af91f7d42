"""What training minimises and measures for one model/loss pair.

| loss   | one-output model                 | softmax model                       |
|--------|----------------------------------|-------------------------------------|
| ce     | bernoulli_ce(z, t)               | softmax_ce(z, class indices)        |
| square | square_loss(unit(z), t in {0,1}) | square_loss(softmax(z), one-hot t)  |

Cross-entropy is computed from the logits of the sigmoid and softmax units, so it pairs only
with them. The NLL metric (nats) is defined for every unit whose output is a probability
(units.Unit.log_probs), whatever the loss, so that square-loss runs can be compared with
cross-entropy runs on likelihood. Which function a loss name means, what it is computed on
and which targets it takes is losses.LOSSES; nothing here names a loss.

Example:
    >>> import torch
    >>> from mlrefresh.models import build_model
    >>> from mlrefresh.objective import Objective
    >>> model = build_model("softmax", num_features=2, num_classes=3)
    >>> objective = Objective("square", model)
    >>> t = objective.targets(torch.tensor([0, 2]))  # one-hot rows for square loss
    >>> t.tolist(), round(objective.loss(model(torch.ones(2, 2)), t).item(), 4)
    ([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], 0.3333)
"""

import torch
import torch.nn.functional as F

from mlrefresh.errors import ConfigError
from mlrefresh.loss_plumbing import backward_alone
from mlrefresh.losses import LOSSES
from mlrefresh.units import UNITS

__all__ = ["Objective", "check_pair"]


def check_pair(loss: str, model_name: str, unit: str) -> None:
    if loss not in LOSSES:
        raise ConfigError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    units = LOSSES[loss].units
    if units is None or unit in units:
        return
    probability = unit in UNITS and UNITS[unit].log_probs is not None
    if LOSSES[loss].is_nll and not probability:  # a likelihood: of a probability
        raise ConfigError(
            f"loss={loss} needs a probability output, but model={model_name} has the {unit} "
            f"unit; use loss=square with model={model_name}, or loss={loss} with model=logistic"
        )
    raise ConfigError(
        f"loss={loss} pairs with the {', '.join(sorted(units))} unit(s), but model={model_name} "
        f"has the {unit} unit; choose another loss or model"
    )


class Objective:
    def __init__(self, loss: str, model):
        self.model = model
        self.loss_name = loss
        spec = LOSSES[loss]
        self.binary = model.binary
        self.loss_is_nll = spec.is_nll
        self.unit = UNITS[model.unit]
        self.has_nll = self.unit.log_probs is not None
        self.one_hot = spec.one_hot and not model.binary
        self._on_logits = spec.on_logits
        self._loss = spec.binary if model.binary else spec.multi
        # the loss's Function when its backward can be called alone (a loss on the logits)
        self.function = spec.functions and spec.functions[0 if model.binary else 1]

    def logit_grad(self, z: torch.Tensor, t: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """dL/dz times the upstream gradient grad (0-dim), by the loss Function's own backward,
        called without autograd (a loss on the logits only: self.function is not None)."""
        return backward_alone(self.function, z, t, grad)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """Training targets for labels y, built once per split: 0/1 floats, one-hot or indices."""
        if self.binary:
            return y.float()
        if self.one_hot:
            return F.one_hot(y, self.model.num_classes).float()
        return y

    def loss(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The mean loss over the rows of z, on the logits or on the unit's output y."""
        # check=False: labels were validated when the data was loaded; no host sync per step
        return self._loss(z if self._on_logits else self.model.output(z), t, check=False)

    @torch.no_grad()
    def nll(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood in nats (models with a probability output only): -log
        p_model(label | x), from the unit's log-probabilities (the loss itself, when it is ce)."""
        return -self.log_probs(z).gather(1, self.labels(t).unsqueeze(1)).mean()

    def labels(self, t: torch.Tensor) -> torch.Tensor:
        """Class indices from training targets (0/1 floats, one-hot rows or indices)."""
        if self.binary:
            return t.long()
        return t.argmax(1) if self.one_hot else t

    @torch.no_grad()
    def log_probs(self, z: torch.Tensor) -> torch.Tensor:
        """log p_model(y = k | x) for every class, [N, K] (models with a probability output)."""
        return self.unit.log_probs(z)

    @torch.no_grad()
    def correct(self, z: torch.Tensor, t: torch.Tensor, decided=None) -> torch.Tensor:
        """How many predictions are right, as a 0-dim tensor (no host sync); decided: the
        classes model.decide(z) gives, when the caller has them."""
        predicted = self.model.decide(z) if decided is None else decided
        if self.one_hot:
            return t.gather(1, predicted.unsqueeze(1)).sum()
        return (predicted == t).sum()
