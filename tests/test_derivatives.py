"""The lecture's derivatives are what trains: edit one and training changes, for every model x
loss pair the project accepts and for a stacked sweep; put it back and the weights are the same
to the last bit. Curves pinned from before the Functions became the one place (commit 2bc39e5,
one thread): the default run, Fashion-MNIST softmax regression, a stacked sweep.

Each loss's derivative is a module-level function of mlrefresh.losses (square_dy, bernoulli_dz,
softmax_dz) that its Function's backward calls; the tests replace it there, or replace the
backward itself (the issue's "edit BernoulliCE.backward to return 0 * dz"), as a student would.
"""

import itertools
import json
import os

import pytest
import torch
from omegaconf import OmegaConf

from helpers import make_cfg
from mlrefresh import losses
from mlrefresh.data import load_dataset
from mlrefresh.errors import ConfigError
from mlrefresh.models import MODELS
from mlrefresh.objective import check_pair
from mlrefresh.sweeps.stacking import train_stacked
from mlrefresh.train import Training, fit

FASHION = "/usr/share/datasets/fashion-mnist"
# the derivative each loss trains by: (one-output model, K-output model)
DERIVATIVE = {"ce": ("bernoulli_dz", "softmax_dz"), "square": ("square_dy", "square_dy")}
KINDS = ("zero", "sign flipped", "backward zeros")
FUNCTION = {"square_dy": losses.SquareLoss, "bernoulli_dz": losses.BernoulliCE,
            "softmax_dz": losses.SoftmaxCE}  # fmt: skip


def accepted_pairs():
    """Every (model, loss) that check_pair lets through: a loss or model added later is here."""
    pairs = []
    for model, loss in itertools.product(MODELS, losses.LOSSES):
        try:
            check_pair(loss, model, MODELS[model].unit)
        except ConfigError:
            continue
        pairs.append((model, loss))
    return pairs


def overrides(model, loss):
    data = ["dataset=xor"] if model == "mlp" else []
    classes = ["dataset.num_classes=3"] if MODELS[model].per_class and model != "mlp" else []
    return (f"model={model}", f"loss={loss}", "trainer.epochs=2", *data, *classes)


def trained(*args):
    """The weights and the loss/val curve of a run of make_cfg(*args), in-process."""
    cfg = make_cfg(*args)
    options = OmegaConf.to_container(cfg.dataset, resolve=True)
    data = load_dataset(options.pop("name"), **options)
    run, curve = Training(cfg, data), []
    fit(run, data, cfg.trainer.epochs, cfg.trainer.batch_size, 1,
        lambda epoch, m, z, elapsed: curve.append(float(m["loss/val"])))  # fmt: skip
    return [p.detach().clone() for p in run.model.parameters()], curve


def mutate(patch, name, kind):
    """A derivative got wrong as a student might: zero, its sign flipped, or the Function's
    backward returning zeros (patch: a monkeypatch context, which puts it back)."""
    right, function = getattr(losses, name), FUNCTION[name]
    right_backward = function.backward

    def zero_backward(ctx, *grads):
        return tuple(None if g is None else 0 * g for g in right_backward(ctx, *grads))

    if kind == "zero":
        patch.setattr(losses, name, lambda *a: 0 * right(*a))
    elif kind == "sign flipped":
        patch.setattr(losses, name, lambda *a: -right(*a))
    else:
        patch.setattr(function, "backward", staticmethod(zero_backward))


def same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_every_accepted_pair_is_covered():
    assert set(accepted_pairs()) >= {("logistic", "ce"), ("softmax", "ce"), ("mlp", "ce"),
                                     ("logistic", "square"), ("softmax", "square"),
                                     ("linear", "square"), ("clamped", "square"),
                                     ("mlp", "square")}  # fmt: skip


@pytest.mark.parametrize("model, loss", accepted_pairs())
def test_a_wrong_derivative_trains_differently_and_the_right_one_as_before(
    one_thread, monkeypatch, model, loss
):
    args = overrides(model, loss)
    before, _ = trained(*args)
    name = DERIVATIVE[loss][MODELS[model].per_class]
    for kind in KINDS:
        with monkeypatch.context() as patch:
            mutate(patch, name, kind)
            wrong, _ = trained(*args)
        assert not same(wrong, before), f"{kind} {name}: {model} x {loss} trained the same"
        assert same(trained(*args)[0], before), f"{model} x {loss} after {kind} was put back"


def _stack(tmp_path, tag, loss):
    base = ("model=softmax", f"loss={loss}", "dataset.num_classes=3", "trainer.epochs=3")
    cfgs = [make_cfg(*base, f"optim.lr={lr}", f"seed={s}") for lr in (0.1, 0.5) for s in (0, 1)]
    train_stacked([(c, tmp_path / f"{tag}{i}") for i, c in enumerate(cfgs)])
    weights = [torch.load(tmp_path / f"{tag}{i}" / "model.pt", weights_only=False)["state_dict"]
               for i in range(len(cfgs))]  # fmt: skip
    metrics = [json.loads((tmp_path / f"{tag}{i}" / "metrics.json").read_text())
               for i in range(len(cfgs))]  # fmt: skip
    return [w for state in weights for w in state.values()], metrics


@pytest.mark.parametrize("loss, name", [("ce", "softmax_dz"), ("square", "square_dy")])
def test_a_stacked_sweep_trains_through_the_same_derivative(one_thread, monkeypatch, tmp_path,
                                                            loss, name):  # fmt: skip
    before, _ = _stack(tmp_path, "before", loss)
    for kind in KINDS:
        with monkeypatch.context() as patch:
            mutate(patch, name, kind)
            wrong, _ = _stack(tmp_path, kind.replace(" ", "_"), loss)
        assert not same(wrong, before), f"{kind} {name}: the stack trained the same"
    assert same(_stack(tmp_path, "again", loss)[0], before)


# --- curves pinned before the change (one thread; rel 1e-5 leaves room for another CPU's sums) --

DEFAULT_CURVE = [
    0.019927574321627617, 0.016188398003578186, 0.015764126554131508, 0.01568334922194481,
    0.01566656306385994, 0.015657244250178337, 0.01565639115869999, 0.015672285109758377,
    0.015675127506256104, 0.015683570876717567, 0.015683772042393684, 0.015693234279751778,
    0.015691125765442848, 0.015704913064837456, 0.015709158033132553, 0.015706324949860573,
    0.01570807956159115, 0.015709446743130684, 0.015709491446614265, 0.01570955477654934,
]  # fmt: skip
STACKED_CE = [  # each job's (loss/train, loss/val) after 3 epochs
    (0.029448995366692543, 0.04851783066987991), (0.02971336990594864, 0.048257727175951004),
    (0.027832815423607826, 0.07451103627681732), (0.028495902195572853, 0.07821368426084518),
]  # fmt: skip


def test_the_default_runs_curve_is_what_it_was(one_thread):
    assert trained()[1] == pytest.approx(DEFAULT_CURVE, rel=1e-5)


def test_a_stacked_sweeps_losses_are_what_they_were(one_thread, tmp_path):
    _, metrics = _stack(tmp_path, "s", "ce")
    final = [(m["loss/train"], m["loss/val"]) for m in metrics]
    assert [pytest.approx(pair, rel=1e-5) for pair in STACKED_CE] == final


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(FASHION), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_softmax_regressions_curve_is_what_it_was(one_thread):
    _, curve = trained("model=softmax", "dataset=fashion_mnist", "dataset.download=false",
                       "trainer.epochs=2")  # fmt: skip
    assert curve == pytest.approx([0.5343124866485596, 0.455899715423584], rel=1e-5)


# --- the lecture's chain rule, through autograd -----------------------------------------------


def test_square_loss_through_a_sigmoid_is_the_lectures_y_minus_t_times_y_one_minus_y():
    gen = torch.Generator().manual_seed(0)
    z = (4 * torch.randn(50, generator=gen, dtype=torch.float64)).requires_grad_()
    t = torch.randint(0, 2, (50,), generator=gen).double()
    (dz,) = torch.autograd.grad(losses.square_loss(torch.sigmoid(z), t), z)
    y = torch.sigmoid(z.detach())
    torch.testing.assert_close(dz, (y - t) * y * (1 - y) / 50, rtol=1e-12, atol=0)
