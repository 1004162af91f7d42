"""The lecture's pieces: the wrong start, per-sample gradient diagnostics, KL to the true
posterior, the MLP, outliers; and each claim of scripts/claims.py on seeds it was not tuned on."""

import os
import re

import pytest
import torch

from helpers import CLAIMS, TRAIN, cli, make_cfg, run_script
from mlrefresh.data import load_dataset
from mlrefresh.diagnostics import gradient_diagnostics, per_sample_dz
from mlrefresh.errors import ConfigError
from mlrefresh.models import build_model, wrong_start
from mlrefresh.objective import Objective
from mlrefresh.runs.run import train

F64 = torch.float64


# --- dL_i/dz_i: the same number as autograd gives for each sample's own loss ---------------------


@pytest.mark.parametrize(
    ("model", "loss"),
    [("logistic", "ce"), ("softmax", "ce"), ("logistic", "square"), ("softmax", "square"),
     ("linear", "square"), ("clamped", "square"), ("mlp", "ce"), ("mlp", "square")],
)  # fmt: skip
def test_per_sample_gradient_equals_autograd_of_each_samples_loss(model, loss):
    gen = torch.Generator().manual_seed(0)
    net = build_model(model, 2, 3 if model in ("softmax", "mlp") else 2,
                      init="normal", init_scale=1.0)  # fmt: skip
    objective = Objective(loss, net)
    x = 2 * torch.randn(7, 2, generator=gen)
    y = torch.randint(0, 3 if model in ("softmax", "mlp") else 2, (7,), generator=gen)
    t = objective.targets(y)
    z = net(x).detach().double()
    ours = per_sample_dz(objective, z, t.double() if t.is_floating_point() else t)
    for i in range(len(x)):
        zi = z[i : i + 1].clone().requires_grad_()
        (g,) = torch.autograd.grad(
            objective.loss(
                zi, t[i : i + 1].to(zi.dtype) if t.is_floating_point() else t[i : i + 1]
            ),
            zi,
        )
        torch.testing.assert_close(ours[i], g[0])  # the loss of one sample: no 1/N


def test_diagnostics_see_saturation_and_dead_units():
    z = torch.tensor([-12.0, 0.2, 3.0])  # a confidently wrong positive, an unsure one, a right one
    t = torch.tensor([1.0, 1.0, 1.0])
    square = gradient_diagnostics(Objective("square", build_model("logistic", 1, 2)), z, t)
    ce = gradient_diagnostics(Objective("ce", build_model("logistic", 1, 2)), z, t)
    assert square["diag/stalled"].item() == pytest.approx(1 / 3)  # wrong, |dL/dz| ~ 6e-6
    assert ce["diag/stalled"].item() == 0  # wrong, but |dL/dz| ~ 1
    assert square["diag/dz_abs"] < 0.1 * ce["diag/dz_abs"]
    clamped = gradient_diagnostics(Objective("square", build_model("clamped", 1, 2)), z, t)
    assert clamped["diag/dead"].item() == pytest.approx(2 / 3)  # z=-12 and z=3: outside [0, 1]


# --- the confidently wrong start ----------------------------------------------------------------


@pytest.mark.parametrize("model", ["logistic", "linear", "clamped", "softmax"])
def test_wrong_start_puts_every_sample_on_the_wrong_side(model):
    k = 3 if model == "softmax" else 2
    ds = load_dataset("blobs", num_classes=k, std=0.5, seed=4)
    net = build_model(model, 2, k)
    wrong_start(net, ds.x_train, ds.y_train, scale=10.0)
    assert (net.predict(ds.x_train) != ds.y_train).all()
    again = build_model(model, 2, k)
    wrong_start(again, ds.x_train, ds.y_train, scale=10.0)
    assert torch.equal(again.linear.weight, net.linear.weight)  # deterministic
    if model == "logistic":
        assert net(ds.x_train).abs().min() > 5  # large magnitude: y(1-y) < 0.007, saturated
    if model == "clamped":
        out = net.output(net(ds.x_train))
        assert ((out == 0) | (out == 1)).all()  # every output outside [0, 1], clamped


def test_wrong_start_needs_every_class(tmp_path):
    from conftest import write_fake_mnist

    write_fake_mnist(tmp_path / "mnist", n_train=40, n_val=20)
    cfg = make_cfg("dataset=mnist", f"dataset.root={tmp_path}", "dataset.download=false",
                   "dataset.verify=header",
                   "model=logistic", "dataset.classes=[0,1]", "dataset.limit=1",
                   "model.init=wrong")  # fmt: skip
    with pytest.raises(ConfigError, match="model.init=wrong needs training samples of every"):
        train(cfg, run_dir=tmp_path / "run")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=mlp", "model.hidden=0"], "model.hidden=0 must be a whole number from 1"),
        (["model=mlp", "model.activation=sigmoid"], "model.activation='sigmoid' is not one"),
        (["model=mlp", "model.init=wrong"], "model=mlp takes model.init=normal"),
        (["dataset.outliers=-5"], "dataset.outliers=-5 must be a whole number from 0"),
        (["dataset.outlier_distance=inf"], "outlier_distance=inf must be a finite number"),
        (["+model.hidden=3"], "unknown key model.hidden; model has only init"),
    ],
)
def test_lecture_options_refused_in_one_line(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(make_cfg(*overrides), run_dir=tmp_path)
    assert os.listdir(tmp_path) == []


# --- likelihood as divergence ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["blobs", "xor"])
def test_true_posterior_is_bayes_and_sums_to_one(name):
    ds = load_dataset(name, n_val=4000, seed=2)
    p = ds.posterior(ds.x_val)
    torch.testing.assert_close(p.sum(1), torch.ones(len(p), dtype=p.dtype))
    bayes = (p.argmax(1) == ds.y_val).double().mean().item()
    assert bayes > 0.97  # the posterior's own decisions are (nearly) the best possible


def test_blobs_posterior_is_the_logistic_of_the_bayes_logit():
    """Two isotropic Gaussians, centres c0, c1, one std: log p1/p0 = (c1-c0).x / s^2 + const."""
    ds = load_dataset("blobs", std=1.3, seed=0)
    p = ds.posterior(ds.x_val)
    logit = (p[:, 1] / p[:, 0]).log()
    c0, c1 = torch.tensor([2.5, 0.0], dtype=F64), torch.tensor([-2.5, 0.0], dtype=F64)
    expected = ds.x_val.double() @ (c1 - c0) / 1.3**2 - (c1.square().sum() - c0.square().sum()) / (
        2 * 1.3**2
    )
    torch.testing.assert_close(logit, expected, rtol=1e-6, atol=1e-6)


def test_kl_and_entropy_are_logged_and_add_up_to_the_nll(tmp_path):
    m = train(make_cfg("dataset.std=1.5", "dataset.n_val=5000"), run_dir=tmp_path)
    assert m["kl/val"] >= 0 and m["entropy/val"] > 0.05
    assert m["nll/val"] == pytest.approx(m["entropy/val"] + m["kl/val"], abs=0.02)


def test_kl_is_null_for_image_data_and_models_without_probabilities(tmp_path):
    m = train(make_cfg("model=linear", "loss=square", "trainer.epochs=2"), run_dir=tmp_path)
    assert m["kl/val"] is None and m["entropy/val"] is None and m["diag/dead"] == 0


# --- the MLP and outliers -----------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["ce", "square"])
def test_mlp_solves_xor_with_both_losses(tmp_path, loss):
    m = train(make_cfg("model=mlp", f"loss={loss}", "dataset=xor", "trainer.epochs=30"),
              run_dir=tmp_path)  # fmt: skip
    assert m["accuracy/val"] >= 0.95


def test_outliers_are_far_on_the_correct_side_and_only_in_training():
    ds = load_dataset("blobs", outliers=30, outlier_distance=25.0, seed=1)
    plain = load_dataset("blobs", seed=1)
    assert len(ds.x_train) == 1030 and torch.equal(ds.x_val, plain.x_val)
    extra, labels = ds.x_train[1000:], ds.y_train[1000:]
    assert (labels == 1).all()  # the last class, whose centre is at (-2.5, 0)
    assert (extra[:, 0] < -20).all()  # beyond it, away from the other class


# --- each claim, on training and data seeds the experiments were not tuned on ---------------


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["saturation", "clamped", "outliers", "xor", "kl"])
def test_claim_holds_on_new_seeds(tmp_path, experiment):
    result = run_script(CLAIMS, experiment, "seed=6,7", "dataset.seed=8,9", "--out", tmp_path,
                        timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(experiment)]
    assert rows and all("  yes  " in line for line in rows), result.stdout


def test_claims_keeps_its_sweeps_in_outputs(tmp_path):
    """Without --out, the sweeps go to outputs/claims/<date>_<time>/ under the current folder
    (not the system's temporary folder, lost at a reboot), and the output says where."""
    result = run_script(CLAIMS, "xor", "seed=6", "dataset.seed=8", "trainer.epochs=2",
                        cwd=tmp_path)  # fmt: skip
    assert result.returncode in (0, 1), result.stderr  # 2 epochs: the claim may not hold
    (made,) = (tmp_path / "outputs" / "claims").iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", made.name)
    assert (made / "xor" / "summary.csv").is_file()
    assert f"sweeps in {os.path.join('outputs', 'claims', made.name)}" in result.stdout


def test_claims_without_a_place_for_its_sweeps_says_so_in_one_line(tmp_path):
    (tmp_path / "outputs").write_text("a file, not a folder")
    result = run_script(CLAIMS, "xor", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (f"error: cannot create a folder in {tmp_path}/outputs/claims for "
                             "the sweeps; run from a folder you can write to, or give --out "
                             "DIR\n")  # fmt: skip
    assert (tmp_path / "outputs").read_text() == "a file, not a folder"


def test_unknown_experiment_gets_hydras_message(tmp_path):
    result = cli(TRAIN, "experiment=nope", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown option experiment=nope; choose one of clamped")
    assert os.listdir(tmp_path) == []


def test_single_runs_of_each_experiment(tmp_path):
    for name, extra in [("saturation", "loss=square"), ("xor", "model=mlp")]:
        m = train(make_cfg(f"experiment={name}", extra), run_dir=tmp_path / name)
        assert (m["accuracy/val"] <= 0.6) if name == "saturation" else (m["accuracy/val"] >= 0.95)
