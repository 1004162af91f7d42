"""What a model declares and the loop, the metrics and the pictures read (models.Model): the
decision threshold from the unit, the inits it serves, the templates it draws; a unit or a
model that breaks the contract is refused in one ConfigError line before any work."""

import pytest
import torch

from mlrefresh.errors import ConfigError
from mlrefresh.models import MODELS, LinearModel, Model, build_model
from mlrefresh.units import UNITS, Unit, two_classes


@pytest.mark.parametrize("name, threshold", [("logistic", 0.0), ("linear", 0.5), ("clamped", 0.5)])
def test_a_one_output_model_decides_where_its_unit_crosses_one_half(name, threshold):
    model = build_model(name, 2, 2)
    assert model.threshold == threshold
    y = model.output(torch.tensor([threshold - 1e-3, threshold, threshold + 1e-3]))
    assert (y >= 0.5).tolist() == [False, True, True]
    assert model.decide(torch.tensor([threshold - 1e-3, threshold])).tolist() == [0, 1]


def test_every_probability_unit_has_log_probabilities_that_sum_to_one():
    z = torch.linspace(-30, 30, 61, dtype=torch.float64)
    for name, unit in UNITS.items():
        if unit.log_probs is None:
            continue
        logits = z if unit.half_at is not None else torch.stack([z, -z, 0 * z], 1)
        torch.testing.assert_close(unit.log_probs(logits).exp().sum(1), torch.ones(61,
                                   dtype=torch.float64), msg=name)  # fmt: skip


def _added(monkeypatch, unit_name, unit, **attributes):
    cls = type("Added", (LinearModel,), {"name": "added", "unit": unit_name, **attributes})
    if unit is not None:
        monkeypatch.setitem(UNITS, unit_name, unit)
    monkeypatch.setitem(MODELS, "added", cls)
    return cls


def test_a_one_output_model_through_a_unit_without_a_threshold_is_refused(monkeypatch):
    _added(monkeypatch, "exp", Unit(torch.exp, None, half_at=None), per_class=False)
    with pytest.raises(ConfigError, match="model=added has one output through the exp unit, "
                       "which has no decision threshold"):  # fmt: skip
        build_model("added", 2, 2)


def test_a_model_with_a_unit_units_does_not_have_is_refused(monkeypatch):
    _added(monkeypatch, "probit", None, per_class=False)
    with pytest.raises(ConfigError, match="model=added has the unit 'probit', which units.UNITS"):
        build_model("added", 2, 2)


def test_a_new_unit_gets_its_own_threshold_and_nll(monkeypatch):
    probit = Unit(torch.special.ndtr, two_classes(torch.special.log_ndtr), half_at=0.0)
    _added(monkeypatch, "probit", probit, per_class=False)
    model = build_model("added", 2, 2)
    assert model.threshold == 0.0
    from mlrefresh.objective import Objective

    objective = Objective("square", model)
    z, t = torch.tensor([-40.0, 0.0, 3.0]), torch.tensor([1.0, 1.0, 0.0])
    expected = -(torch.special.log_ndtr(z[:2]).sum() + torch.special.log_ndtr(-z[2])) / 3
    assert objective.has_nll and torch.allclose(objective.nll(z, t), expected)  # finite at -40


def test_inits_a_model_does_not_serve_are_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^model=mlp takes model.init=normal, not wrong; "
                       "model.init=wrong is for the linear models$"):  # fmt: skip
        build_model("mlp", 2, 2, init="wrong")
    assert MODELS["softmax"].inits == ("zeros", "normal", "wrong")


def test_templates_are_the_weights_reading_the_input_or_none():
    assert build_model("softmax", 4, 3).templates().shape == (3, 4)
    assert build_model("mlp", 4, 3).templates() is None
    assert Model.templates(build_model("logistic", 4, 2)) is None  # the base: none
