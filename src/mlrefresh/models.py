"""Models: a linear map z = w^T x + b followed by an output unit, as in the lecture, and an MLP.

| model    | outputs            | unit      | predicts class 1 when          |
|----------|--------------------|-----------|--------------------------------|
| logistic | 1 (two classes)    | sigmoid   | y >= 1/2, i.e. z >= 0          |
| softmax  | K                  | softmax   | argmax_k z_k                   |
| linear   | 1 (two classes)    | identity  | y >= 1/2                       |
| clamped  | 1 (two classes)    | clamped   | y >= 1/2                       |
| mlp      | K, after one hidden layer (tanh or relu) | softmax | argmax_k z_k       |

Every model is a `Model`, which declares what the loop, the metrics and the pictures read:
`unit` (a name in units.UNITS) and `per_class`; `forward(x)` returns the logits z ([N] for one
output, [N, K] otherwise), `output(z)` the prediction y through its unit, `decide(z)` /
`predict(x)` class indices, at the unit's threshold for one output (`threshold`, from the
unit: a unit without one is refused for a one-output model); `inits`, the `model.init` values
its constructor serves (`wrong` only for a linear model, whose `self.linear` reads the input);
`templates()`, the weight rows drawn as 28x28 pictures, or None. The output layer is
`self.linear`. A model's config keys (configs/model/<name>.yaml) are its constructor's
annotated keywords: their types, ranges and defaults are written there once (schema.py reads
them); `check` adds what depends on the data.

Adding a model: a `Model` subclass here, an entry in MODELS, and configs/model/<name>.yaml.

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

from typing import Annotated

import torch
from torch import nn

from mlrefresh import schema
from mlrefresh.checks import choice, number, rule, whole
from mlrefresh.errors import ConfigError
from mlrefresh.units import UNITS

__all__ = ["MODELS", "MLP", "LinearModel", "Model", "affine", "build_model", "check_model",
           "model_keys", "model_options", "output_unit", "wrong_start"]  # fmt: skip

INITS = ("zeros", "normal", "wrong")
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}
# zeros, normal (std init_scale), or wrong: against the class means (see wrong_start)
Init = Annotated[str, rule(choice, choices=INITS)]
Scale = Annotated[float, rule(number, low=0, low_open=True, high=1e4, example=0.01)]


def affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x W^T + b, computed as (W x^T)^T + b: on the CPU faster than F.linear for few outputs (a
    wide product, not a tall one: 40 against 62 us for [128, 784] x [784, 10] at one thread),
    and bit for bit the product a stack of models computes (sweeps/stacked_model.py)."""
    return torch.mm(weight, x.t()).t() + bias


class Model(nn.Module):
    """What every model provides. A subclass sets `unit` (a name in units.UNITS), `per_class`
    (one output per class, or one output for two classes) and `inits` (the model.init values
    its constructor serves), builds its layers with the output layer as `self.linear`, and
    writes `forward(x) -> z` with `self.layer`."""

    unit = "softmax"
    per_class = True
    inits = ("zeros", "normal")

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.binary = not self.per_class  # one output, two classes

    @property
    def threshold(self) -> float:
        """Class 1 when z >= threshold (one output): where the unit's y crosses 1/2
        (units.Unit.half_at: sigmoid at z = 0, identity and clamped at z = 1/2)."""
        return UNITS[self.unit].half_at

    def templates(self) -> torch.Tensor | None:
        """The weight rows that read the input pixels directly, one per output (TensorBoard
        draws them as 28x28 templates), or None: no layer reads the input alone."""
        return None

    def layer(self, x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        """One affine layer, x W^T + b (affine), the one place a stack of models computes
        differently (sweeps/stacked_model.py)."""
        return affine(x, linear.weight, linear.bias)

    def output(self, z: torch.Tensor) -> torch.Tensor:
        """The prediction y = unit(z)."""
        return UNITS[self.unit](z)

    def decide(self, z: torch.Tensor) -> torch.Tensor:
        """Class indices from logits (without computing the output unit). Logits in columns
        (layer's (W x^T)^T) are copied into rows first: argmax over the classes of a column-major
        [10000, 10] takes 1.4 ms at one thread, the copy and a row-major argmax 0.65."""
        return (z >= self.threshold).long() if self.binary else z.contiguous().argmax(-1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.decide(self(x))

    @classmethod
    def check(cls, num_classes: int, **options) -> None:
        """Refuse options this model cannot take (their ranges: the constructor's annotations),
        or data it cannot fit, before any work (ConfigError)."""
        if cls.unit not in UNITS:
            raise ConfigError(
                f"model={cls.name} has the unit {cls.unit!r}, which units.UNITS does not have; "
                f"add it there, or use one of {', '.join(UNITS)}"
            )
        if not cls.per_class and UNITS[cls.unit].half_at is None:
            raise ConfigError(
                f"model={cls.name} has one output through the {cls.unit} unit, which has no "
                "decision threshold; give the unit its half_at (units.py), or one output a class"
            )
        if not cls.per_class and num_classes > 2:
            raise ConfigError(
                f"model={cls.name} has one output, for 2 classes, but the data has {num_classes} "
                "classes; use model=softmax, or keep two classes (e.g. 'dataset.classes=[3,8]')"
            )
        schema.check_values("model", cls.__init__, options)
        init = options.get("init")
        if init is not None and init not in cls.inits:
            wrong = "; model.init=wrong is for the linear models" if init == "wrong" else ""
            raise ConfigError(
                f"model={cls.name} takes model.init={' or '.join(cls.inits)}, not {init}{wrong}"
            )


class LinearModel(Model):
    """z = w^T x + b, then the unit: one output for two classes, or one per class."""

    inits = INITS

    def __init__(self, num_features, num_classes, init: Init = "zeros", init_scale: Scale = 0.01):
        super().__init__(num_classes)
        self.linear = nn.Linear(num_features, num_classes if self.per_class else 1)
        with torch.no_grad():
            if init == "normal":
                self.linear.weight.normal_(0.0, init_scale)
            else:  # zeros; `wrong` is set from the data by wrong_start
                self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.layer(x, self.linear)
        return z.squeeze(-1) if self.binary else z

    def templates(self) -> torch.Tensor:
        return self.linear.weight


class Logistic(LinearModel):
    name, unit, per_class = "logistic", "sigmoid", False


class Softmax(LinearModel):
    name, unit, per_class = "softmax", "softmax", True


class Linear(LinearModel):
    name, unit, per_class = "linear", "identity", False


class Clamped(LinearModel):
    name, unit, per_class = "clamped", "clamped", False


class MLP(Model):
    """x -> activation(W1 x + b1) -> W2 h + b2 = z -> softmax. The hidden layer starts at
    N(0, init_scale^2) (weights and biases, so that the units differ), the output layer at 0."""

    name, unit, per_class = "mlp", "softmax", True
    inits = ("normal",)  # random hidden units; the output layer starts at 0

    def __init__(
        self,
        num_features,
        num_classes,
        init: Init = "normal",  # hidden layer N(0, init_scale^2), output layer 0
        init_scale: Scale = 1.0,
        hidden: Annotated[int, rule(whole, low=1, high=100_000, example=16)] = 16,
        activation: Annotated[str, rule(choice, choices=ACTIVATIONS)] = "tanh",
    ):
        super().__init__(num_classes)
        self.hidden = nn.Linear(num_features, hidden)
        self.linear = nn.Linear(hidden, num_classes)
        self._activation = ACTIVATIONS[activation]
        with torch.no_grad():
            self.hidden.weight.normal_(0.0, init_scale)
            self.hidden.bias.normal_(0.0, init_scale)
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self._activation(self.layer(x, self.hidden)), self.linear)


MODELS = {cls.name: cls for cls in (Logistic, Softmax, Linear, Clamped, MLP)}


def _model(name) -> type[Model]:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def output_unit(name) -> str:
    """The output unit of model `name`, or a ConfigError naming the models there are."""
    return _model(name).unit


def model_keys(name) -> tuple[str, ...]:
    """The keys of configs/model/<name>.yaml: `name` and the model's constructor keywords."""
    return ("name", *(f.name for f in schema.fields(_model(name).__init__)))


def model_options(model_cfg) -> dict:
    """The constructor keywords a model config (configs/model/<name>.yaml) gives."""
    return {key: model_cfg[key] for key in model_keys(model_cfg["name"])[1:] if key in model_cfg}


def check_model(name, num_classes, **options) -> None:
    """Refuse a model that cannot work with this many classes, or a bad option."""
    _model(name).check(num_classes, **options)


def build_model(name, num_features, num_classes, *args, **options) -> Model:
    """MODELS[name](num_features, num_classes, init, init_scale, ...), its options checked."""
    cls = _model(name)
    keys = model_keys(name)[1:]
    cls.check(num_classes, **dict(zip(keys, args)), **options)
    model = cls(num_features, num_classes, *args, **options)
    model.num_features = num_features  # model.pt records it, to build the model again (api)
    return model


@torch.no_grad()
def wrong_start(model: Model, x: torch.Tensor, y: torch.Tensor, scale: float) -> None:
    """Set the weights to the lecture's confidently wrong start (see the module docstring).
    Deterministic for given data."""
    k = model.num_classes if not model.binary else 2
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
        b = model.threshold - w @ (means[0] + means[1]) / 2  # z = threshold at the midpoint
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
