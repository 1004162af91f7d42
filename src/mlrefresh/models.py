"""Models: a linear map z = w^T x + b followed by an output unit, as in the lecture, and an MLP.

| model    | outputs            | unit      | predicts class 1 when          |
|----------|--------------------|-----------|--------------------------------|
| logistic | 1 (two classes)    | sigmoid   | y >= 1/2, i.e. z >= 0          |
| softmax  | K                  | softmax   | argmax_k z_k                   |
| linear   | 1 (two classes)    | identity  | y >= 1/2                       |
| clamped  | 1 (two classes)    | clamped   | y >= 1/2                       |
| mlp      | K, after one hidden layer (tanh or relu) | softmax | argmax_k z_k       |

`forward(x)` returns the logits z ([N] for one output, [N, K] otherwise), `output(z)` the
prediction y, `decide(z)` / `predict(x)` class indices.

`stack_models(models)` makes one model of M models of the same shape (a stacked sweep, see
train.py): its parameters have a leading model dimension ([M, K, D]), it maps inputs
[M, N, D] (or fewer batches, each shared by consecutive models: StackedLinear) to logits
[M, N] or [M, N, K] with batched matrix products, and `model_slice(stack, m)` is model m's
state_dict, with the keys and shapes of the models it was made from.

Starts (`model.init`): `zeros`; `normal` (weights N(0, init_scale^2)); `wrong`, the lecture's
confidently wrong start, built from the training data by `wrong_start`: the weights point
against the difference of the class means, scaled by init_scale, with the boundary through
their midpoint, so that a sample at distance d from that boundary gets a logit of the wrong
sign and size init_scale * d.

Example:
    >>> import torch
    >>> from mlrefresh.models import build_model
    >>> model = build_model("logistic", num_features=2, num_classes=2)
    >>> model(torch.ones(3, 2)).shape, model.predict(torch.ones(3, 2)).tolist()
    (torch.Size([3]), [1, 1, 1])
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from mlrefresh import checks
from mlrefresh.errors import ConfigError
from mlrefresh.units import UNITS

__all__ = ["MODELS", "LinearModel", "MLP", "StackedLinear", "build_model", "check_model",
           "model_keys", "model_slice", "output_unit", "stack_models", "wrong_start"]  # fmt: skip

INITS = ("zeros", "normal", "wrong")
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}

# name -> (output unit, one output per class?)
MODELS = {
    "logistic": ("sigmoid", False),
    "softmax": ("softmax", True),
    "linear": ("identity", False),
    "clamped": ("clamped", False),
    "mlp": ("softmax", True),
}


def model_keys(name) -> tuple[str, ...]:
    """The keys of configs/model/<name>.yaml."""
    base = ("name", "init", "init_scale")
    return (*base, "hidden", "activation") if name == "mlp" else base


class StackedLinear(torch.autograd.Function):
    """z = x W^T + b for M models at once: W [M, K, D], b [M, K], x [G, N, D] -> z [M, N, K],
    where G divides M and each input batch x[g] goes to M/G consecutive models (G = M: one batch
    per model; G = 1: the same inputs for all, as in validation; in between: jobs that share a
    seed share their batches, which are then read once).

    The backward is written out, dW = dz^T x and db = sum over rows of dz, each one batched
    product in W's own layout: autograd's backward of a product with the transposed W costs
    three times as much on the CPU (a transposed gradient, then a copy)."""

    @staticmethod
    def forward(x, weight, bias):
        m, k, d = weight.shape
        # (W x^T)^T: on the CPU faster than x W^T for K = 10 (a wide product, not a tall one)
        z = torch.bmm(weight.view(x.shape[0], -1, d), x.transpose(1, 2))  # [G, M/G * K, N]
        return z.view(m, k, -1).transpose(1, 2) + bias.unsqueeze(1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _ = inputs
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, dz):
        x, weight = ctx.saved_tensors
        (g, n, d), (m, k, _) = x.shape, weight.shape
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = torch.bmm(dz, weight).view(g, m // g, n, d).sum(1)
        if ctx.needs_input_grad[1]:
            dw = torch.bmm(dz.transpose(1, 2).reshape(g, -1, n), x).view(m, k, d)
        if ctx.needs_input_grad[2]:
            db = dz.sum(1)
        return dx, dw, db


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x W^T + b for one model (W [K, D]), or for M stacked models (W [M, K, D]; x [G, N, D],
    see StackedLinear, or [N, D], the same inputs for every model)."""
    if weight.dim() == 2:
        return F.linear(x, weight, bias)  # nn.Linear's forward, minus its hook checks
    return StackedLinear.apply(x if x.dim() == 3 else x.unsqueeze(0), weight, bias)


class _Classifier(nn.Module):
    """What every model shares: the output unit and the decision from logits."""

    def output(self, z: torch.Tensor) -> torch.Tensor:
        return self._output(z)

    def decide(self, z: torch.Tensor) -> torch.Tensor:
        """Class indices from logits (without computing the output unit)."""
        return (z >= self._threshold).long() if self.binary else z.argmax(-1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.decide(self(x))


class LinearModel(_Classifier):
    def __init__(self, num_features, num_outputs, unit, init="zeros", init_scale=0.01):
        super().__init__()
        self.linear = nn.Linear(num_features, num_outputs)
        self.unit = unit
        self._output = UNITS[unit]
        self.binary = num_outputs == 1
        # sigmoid(z) >= 1/2 exactly when z >= 0; identity and clamped reach 1/2 at z = 1/2
        self._threshold = 0.0 if unit == "sigmoid" else 0.5
        with torch.no_grad():
            if init == "normal":
                self.linear.weight.normal_(0.0, init_scale)
            else:  # zeros; `wrong` is set from the data by wrong_start
                self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = _linear(x, self.linear.weight, self.linear.bias)
        return z.squeeze(-1) if self.binary else z


class MLP(_Classifier):
    """x -> activation(W1 x + b1) -> W2 h + b2 = z -> softmax. The hidden layer starts at
    N(0, init_scale^2) (weights and biases, so that the units differ), the output layer at 0."""

    def __init__(self, num_features, num_classes, hidden=16, activation="tanh", init_scale=1.0):
        super().__init__()
        self.hidden = nn.Linear(num_features, hidden)
        self.linear = nn.Linear(hidden, num_classes)
        self.unit, self._output, self.binary, self._threshold = (
            "softmax",
            UNITS["softmax"],
            False,
            0,
        )
        self._activation = ACTIVATIONS[activation]
        with torch.no_grad():
            self.hidden.weight.normal_(0.0, init_scale)
            self.hidden.bias.normal_(0.0, init_scale)
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._activation(_linear(x, self.hidden.weight, self.hidden.bias))
        return _linear(h, self.linear.weight, self.linear.bias)


def output_unit(name) -> str:
    """The output unit of model `name`, or a ConfigError naming the models there are."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name][0]


def check_model(name, num_classes, init="zeros", init_scale=0.01, hidden=16, activation="tanh"):
    """Refuse a model that cannot work with this many classes, or a bad option."""
    output_unit(name)
    if not MODELS[name][1] and num_classes > 2:
        raise ConfigError(
            f"model={name} has one output, for 2 classes, but the data has {num_classes} "
            "classes; use model=softmax, or keep two classes (e.g. 'dataset.classes=[3,8]')"
        )
    checks.choice("model.init", init, INITS)
    checks.number("model.init_scale", init_scale, low=0, low_open=True, high=1e4, example=0.01)
    if name == "mlp":
        checks.whole("model.hidden", hidden, low=1, high=100_000, example=16)
        checks.choice("model.activation", activation, ACTIVATIONS)
        if init != "normal":
            raise ConfigError(
                f"model=mlp takes model.init=normal (random hidden units), not {init}; "
                "model.init=wrong is for the linear models"
            )


def build_model(name, num_features, num_classes, init="zeros", init_scale=0.01, hidden=16,
                activation="tanh") -> nn.Module:  # fmt: skip
    check_model(name, num_classes, init, init_scale, hidden, activation)
    if name == "mlp":
        return MLP(num_features, num_classes, hidden, activation, init_scale)
    unit, per_class = MODELS[name]
    return LinearModel(num_features, num_classes if per_class else 1, unit, init, init_scale)


def stack_models(models: list[nn.Module]) -> nn.Module:
    """One model whose parameters are those of `models` (same class and shape) stacked along a
    new first dimension; copies, not views: train the stack, then read each with model_slice."""
    stack = copy.deepcopy(models[0])
    for name, _ in models[0].named_parameters():
        module_name, _, attr = name.rpartition(".")
        module = stack.get_submodule(module_name)
        values = [m.get_parameter(name).detach() for m in models]
        setattr(module, attr, nn.Parameter(torch.stack(values)))
    return stack


def model_slice(stack: nn.Module, m: int) -> dict:
    """Model m's state_dict (keys and shapes as its own model's), as views into the stack."""
    return {key: value[m] for key, value in stack.state_dict().items()}


@torch.no_grad()
def wrong_start(model: LinearModel, x: torch.Tensor, y: torch.Tensor, scale: float) -> None:
    """Set the weights to the lecture's confidently wrong start (see the module docstring).
    Deterministic for given data."""
    k = model.linear.out_features if not model.binary else 2
    present = torch.bincount(y, minlength=k) > 0
    if int(present.sum()) < 2 or not bool(present.all()):
        raise ConfigError(
            f"model.init=wrong needs training samples of every class ({int(present.sum())} of "
            f"{k} present); use model.init=normal, or data with all classes"
        )
    means = torch.stack([x[y == c].mean(0) for c in range(k)]).double()  # [K, D]
    if model.binary:
        direction = means[1] - means[0]
        norm = direction.norm()
        if norm == 0:
            raise ConfigError("model.init=wrong: the two class means coincide; use init=normal")
        w = -scale * direction / norm  # points from class 1 towards class 0
        b = model._threshold - w @ (means[0] + means[1]) / 2  # z = threshold at the midpoint
        model.linear.weight.copy_(w[None])
        model.linear.bias.copy_(b[None])
        return
    centre = means.mean(0)
    offsets = means - centre  # [K, D]
    norm = offsets.norm(dim=1).max()
    if norm == 0:
        raise ConfigError("model.init=wrong: the class means coincide; use model.init=normal")
    w = -scale * offsets / norm  # z_k is lowest where class k lives
    model.linear.weight.copy_(w)
    model.linear.bias.copy_(-w @ centre)
