"""Models: a linear map z = w^T x + b followed by an output unit, as in the lecture.

| model    | outputs            | unit      | predicts class 1 when          |
|----------|--------------------|-----------|--------------------------------|
| logistic | 1 (two classes)    | sigmoid   | y >= 1/2, i.e. z >= 0          |
| softmax  | K                  | softmax   | argmax_k z_k                   |
| linear   | 1 (two classes)    | identity  | y >= 1/2                       |
| clamped  | 1 (two classes)    | clamped   | y >= 1/2                       |

`forward(x)` returns the logits z ([N] for one output, [N, K] for softmax), `output(z)` the
prediction y, `predict(x)` class indices.

Example:
    >>> import torch
    >>> from mlrefresh.models import build_model
    >>> model = build_model("logistic", num_features=2, num_classes=2)
    >>> model(torch.ones(3, 2)).shape, model.predict(torch.ones(3, 2)).tolist()
    (torch.Size([3]), [1, 1, 1])
"""

import torch
import torch.nn.functional as F
from torch import nn

from mlrefresh import checks
from mlrefresh.errors import ConfigError
from mlrefresh.units import UNITS

__all__ = ["MODELS", "MODEL_KEYS", "LinearModel", "build_model", "check_model", "output_unit"]

MODEL_KEYS = ("name", "init", "init_scale")  # the keys of configs/model/*.yaml
INITS = ("zeros", "normal")

# name -> (output unit, one output per class?)
MODELS = {
    "logistic": ("sigmoid", False),
    "softmax": ("softmax", True),
    "linear": ("identity", False),
    "clamped": ("clamped", False),
}


class LinearModel(nn.Module):
    def __init__(self, num_features, num_outputs, unit, init="zeros", init_scale=0.01):
        super().__init__()
        self.linear = nn.Linear(num_features, num_outputs)
        self.unit = unit
        self._output = UNITS[unit]
        self.binary = num_outputs == 1
        # sigmoid(z) >= 1/2 exactly when z >= 0; identity and clamped reach 1/2 at z = 1/2
        self._threshold = 0.0 if unit == "sigmoid" else 0.5
        with torch.no_grad():
            if init == "zeros":
                self.linear.weight.zero_()
            else:
                self.linear.weight.normal_(0.0, init_scale)
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.linear(x, self.linear.weight, self.linear.bias)  # self.linear(x), minus hook checks
        return z.squeeze(1) if self.binary else z

    def output(self, z: torch.Tensor) -> torch.Tensor:
        return self._output(z)

    def decide(self, z: torch.Tensor) -> torch.Tensor:
        """Class indices from logits (without computing the output unit)."""
        return (z >= self._threshold).long() if self.binary else z.argmax(1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.decide(self(x))


def output_unit(name) -> str:
    """The output unit of model `name`, or a ConfigError naming the models there are."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name][0]


def check_model(name, num_classes, init="zeros", init_scale=0.01) -> None:
    """Refuse a model that cannot work with this many classes, or a bad init option."""
    output_unit(name)
    if not MODELS[name][1] and num_classes > 2:
        raise ConfigError(
            f"model={name} has one output, for 2 classes, but the data has {num_classes} "
            "classes; use model=softmax, or keep two classes (e.g. dataset.classes=[3,8])"
        )
    checks.choice("model.init", init, INITS)
    checks.number("model.init_scale", init_scale, low=0, low_open=True, high=1e4, example=0.01)


def build_model(name, num_features, num_classes, init="zeros", init_scale=0.01) -> LinearModel:
    check_model(name, num_classes, init, init_scale)
    unit, per_class = MODELS[name]
    return LinearModel(num_features, num_classes if per_class else 1, unit, init, init_scale)
