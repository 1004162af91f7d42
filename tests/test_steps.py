"""The training step: the written-out linear step against autograd's, bit for bit; pixels kept
as bytes give the loader's floats; one run's curve pinned from before the faster step."""

import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from conftest import write_fake_mnist
from helpers import make_cfg
from mlrefresh.data import load_dataset
from mlrefresh.data.dataset import from_bytes
from mlrefresh.epoch import autograd_step, batch, linear_step, make_step
from mlrefresh.models import build_model
from mlrefresh.objective import Objective
from mlrefresh.optim import build_optimizer
from mlrefresh.train import Training, fit


@pytest.fixture
def mnist_root(tmp_path):
    write_fake_mnist(tmp_path / "mnist", n_train=300, n_val=100)
    return tmp_path


def _steps(make, model_name, optim, x, y):
    torch.manual_seed(0)
    model = build_model(model_name, x.shape[1], 10 if model_name == "softmax" else 2)
    with torch.no_grad():
        model.linear.weight.normal_(0.0, 0.1)  # not zeros: every gradient entry differs
    objective = Objective("ce", model)
    optimizer, schedule = build_optimizer(optim, model.parameters(), total_steps=12)
    step = make(model, objective, optimizer, x, objective.targets(y))
    seen = []
    gen = torch.Generator().manual_seed(1)
    for i, idx in enumerate(torch.randperm(len(y), generator=gen)[:700].split(64)):
        schedule(i)  # 10 full batches, then a partial one
        z, norms = step(idx)
        seen += [z, *norms]
    return [*model.parameters(), *seen]


@pytest.mark.parametrize("model_name", ["logistic", "softmax"])
@pytest.mark.parametrize(
    "optim",
    [{"name": "sgd", "lr": 0.5, "momentum": 0.9, "weight_decay": 1e-3},
     {"name": "adam", "lr": 0.01, "schedule": "cosine"}],
    ids=["sgd", "adam"],
)  # fmt: skip
@pytest.mark.parametrize("inputs", ["floats", "bytes"])
def test_the_linear_step_is_autograds_to_the_last_bit(one_thread, model_name, optim, inputs):
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (1000, 784), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10 if model_name == "softmax" else 2, (1000,), generator=gen)
    x = pixels if inputs == "bytes" else from_bytes(pixels)
    written_out = _steps(linear_step, model_name, optim, x, y)  # in grad mode, as autograd's
    autograd = _steps(autograd_step, model_name, optim, x, y)
    assert all(torch.equal(a, b) for a, b in zip(written_out, autograd, strict=True))
    assert not any(t.requires_grad for t in written_out[2:])  # no graph recorded


def _epochs(make, optim, x, y, epochs=2):
    """train_epoch's epochs with the step make() builds: what it returned, and the run."""
    from mlrefresh.epoch import train_epoch

    torch.manual_seed(0)
    model = build_model("softmax", x.shape[1], 10)
    objective = Objective("ce", model)
    optimizer, schedule = build_optimizer(optim, model.parameters(), total_steps=30)
    t = objective.targets(y)
    step = make(model, objective, optimizer, x, t)
    gen = torch.Generator().manual_seed(1)
    seen = [train_epoch(step, schedule, t, 64, torch.randperm(len(y), generator=gen), 15 * e)
            for e in range(epochs)]  # fmt: skip
    return seen, model, objective, optimizer


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_train_epoch_runs_the_written_out_step_in_inference_mode_and_nothing_leaks(
    one_thread, momentum
):
    """The written-out step records nothing for autograd, so train_epoch runs it under
    torch.inference_mode (5-9% less per epoch of steps): the same bits as autograd's step, and what
    outlives the epoch (logits, the optimizer's state, the one-hot cache) is a normal tensor
    that autograd and in-place updates outside inference mode can use."""
    from mlrefresh import loss_plumbing
    from mlrefresh.epoch import step_norms

    loss_plumbing._identity.cache_clear()  # made afresh in the inference-mode epoch
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (900, 784), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (900,), generator=gen)
    optim = {"name": "sgd", "lr": 0.5, "momentum": momentum, "schedule": "cosine"}
    fast, model, objective, optimizer = _epochs(linear_step, optim, x, y)
    slow, reference, *_ = _epochs(autograd_step, optim, x, y)
    assert fast[0][2][0][0].is_inference()  # the step's own outputs: made in inference mode
    assert not slow[0][2][0][0].is_inference()  # autograd's step: never
    for (z, t, norms), (z_slow, t_slow, norms_slow) in zip(fast, slow, strict=True):
        assert not z.is_inference() and torch.equal(z, z_slow) and torch.equal(t, t_slow)
        per_step = step_norms(norms)
        assert not per_step.is_inference() and torch.equal(per_step, step_norms(norms_slow))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters()))
    # the buffers as the optimizer keeps them (state_dict's clones would be normal anyway)
    kept = [*optimizer.flat[0], *optimizer.flat[1], *(optimizer.velocity or [])]
    assert not any(v.is_inference() for v in kept)
    # outside inference mode now: autograd through the loss Function, and a step in place
    z = model(x[:32].float() / 255)
    objective.loss(z, y[:32]).backward()  # the one-hot rows come from the cached identity
    assert not loss_plumbing._identity(10, z.dtype, z.device).is_inference()
    optimizer.step()


def test_the_linear_step_trains_with_torch_optims_sgd_too():
    """An optimizer without flatten (torch.optim's) keeps each gradient apart: same numbers."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 5, generator=gen), torch.randint(0, 3, (300,), generator=gen)
    start = build_model("softmax", 5, 3)
    trained = []
    for make in ("ours", "torch.optim"):
        model = build_model("softmax", 5, 3)
        model.load_state_dict(start.state_dict())
        if make == "ours":
            optimizer, _ = build_optimizer({"name": "sgd", "lr": 0.1, "momentum": 0.9},
                                           model.parameters(), 1)  # fmt: skip
        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        step = linear_step(model, Objective("ce", model), optimizer, x, y)
        assert step.inference_mode == (make == "ours")  # torch.optim's state: never made there
        for idx in torch.arange(300).split(50):
            step(idx)
        trained.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*trained):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_make_step_writes_out_linear_models_with_a_loss_on_the_logits():
    x, t = torch.randn(8, 3), torch.tensor([0, 1] * 4)
    for model_name, loss, kind in [("softmax", "ce", "linear_step"),
                                   ("logistic", "ce", "linear_step"),
                                   ("softmax", "square", "autograd_step"),
                                   ("linear", "square", "autograd_step"),
                                   ("mlp", "ce", "autograd_step")]:  # fmt: skip
        model = build_model(model_name, 3, 2)
        objective = Objective(loss, model)
        optimizer, _ = build_optimizer({"name": "sgd", "lr": 0.1}, model.parameters(), 1)
        step = make_step(model, objective, optimizer, x, objective.targets(t))
        assert step.__qualname__.startswith(kind), (model_name, loss, step.__qualname__)


@pytest.mark.parametrize("own", ["forward", "layer"])
def test_a_linear_model_with_a_forward_of_its_own_keeps_autograds_step(own):
    from mlrefresh.models import Softmax

    class Squared(Softmax):  # a model someone added: the step cannot assume z = W x + b
        if own == "forward":

            def forward(self, x):
                return super().forward(x * x)
        else:

            def layer(self, x, linear):
                return super().layer(x * x, linear)

    model = Squared(3, 2)
    objective = Objective("ce", model)
    optimizer, _ = build_optimizer({"name": "sgd", "lr": 0.1}, model.parameters(), 1)
    step = make_step(model, objective, optimizer, torch.randn(8, 3), torch.tensor([0, 1] * 4))
    assert step.__qualname__.startswith("autograd_step")


def test_image_bytes_give_the_loaders_floats(mnist_root):
    data = load_dataset("mnist", root=str(mnist_root), download=False, verify="header")
    assert data.train_bytes.dtype == torch.uint8 and data.step_inputs is data.train_bytes
    assert torch.equal(from_bytes(data.train_bytes), data.x_train)
    idx = torch.randperm(len(data.x_train))[:50].view(5, 10)  # a stack's [M, B] index too
    assert torch.equal(batch(data.train_bytes, idx), data.x_train[idx])
    blobs = load_dataset("blobs")  # generated data: floats only
    assert blobs.train_bytes is None and blobs.step_inputs is blobs.x_train


def test_bytes_become_their_float32_quotient_by_255_whatever_the_default_dtype():
    every = torch.arange(256, dtype=torch.uint8).repeat(3, 1)
    quotient = torch.arange(256, dtype=torch.float32).repeat(3, 1) / 255  # rounded once
    default = torch.get_default_dtype()
    try:
        for dtype in (torch.float32, torch.float64):
            torch.set_default_dtype(dtype)
            assert from_bytes(every).dtype == torch.float32
            assert torch.equal(from_bytes(every), quotient)
    finally:
        torch.set_default_dtype(default)
    # and when the default was float64 before mlrefresh was imported
    code = ("import torch; torch.set_default_dtype(torch.float64); "
            "from mlrefresh.data.dataset import from_bytes; "
            "print(from_bytes(torch.arange(256, dtype=torch.uint8)).dtype)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "torch.float32"


# Each run's loss/val after every epoch, at one thread, from the autograd step that read float
# pixels (commit 51a4ba0, before linear_step and the byte pixels).
PINNED = {
    ("model=softmax", "dataset.num_classes=3", "trainer.epochs=4", "optim.lr=0.5"):
        [0.07226167619228363, 0.07681995630264282, 0.0770517960190773, 0.07702012360095978],
    ("model=logistic", "trainer.epochs=4", "optim.momentum=0.9"):
        [0.020700372755527496, 0.017149001359939575, 0.016871673986315727, 0.01685468479990959],
    ("model=softmax", "dataset=mnist", "trainer.epochs=4", "trainer.batch_size=32",
     "optim.lr=0.01"):
        [2.409248113632202, 2.3727920055389404, 2.3133702278137207, 2.3113224506378174],
}  # fmt: skip


@pytest.mark.parametrize("overrides", PINNED, ids=["blobs-softmax", "blobs-logistic", "mnist"])
def test_a_runs_curve_is_what_it_was_before_the_faster_step(one_thread, mnist_root, overrides):
    files = [f"dataset.root={mnist_root}", "dataset.download=false", "dataset.verify=header"]
    cfg = make_cfg(*overrides, *(files if "dataset=mnist" in overrides else []))
    options = OmegaConf.to_container(cfg.dataset, resolve=True)
    data = load_dataset(options.pop("name"), **options)
    curve = []
    fit(Training(cfg, data), data, cfg.trainer.epochs, cfg.trainer.batch_size, 1,
        lambda epoch, m, z, elapsed: curve.append(float(m["loss/val"])))  # fmt: skip
    assert curve == pytest.approx(PINNED[overrides], rel=1e-5)


@pytest.mark.parametrize(
    "model_name, loss, classes",
    [("softmax", "ce", 4), ("logistic", "ce", 2), ("logistic", "square", 2),
     ("clamped", "square", 2), ("softmax", "square", 4)],
)  # fmt: skip
def test_epoch_metrics_share_work_and_equal_each_metrics_own(model_name, loss, classes):
    """epoch_metrics computes the training loss and dL/dz in one forward and backward, and the
    decided classes once: each number equal, to the last bit, to its own function's."""
    from mlrefresh.diagnostics import gradient_diagnostics
    from mlrefresh.epoch import epoch_metrics

    gen = torch.Generator().manual_seed(3)
    objective = Objective(loss, build_model(model_name, 5, classes))
    shape = (500, classes) if classes > 2 else (500,)
    z, z_val = 3 * torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    t = objective.targets(torch.randint(0, classes, (500,), generator=gen))
    t_val = objective.targets(torch.randint(0, classes, (500,), generator=gen))
    metrics = epoch_metrics(objective, z, t, torch.rand(9, 2, generator=gen), z_val, t_val, None)
    alone = {"loss/train": objective.loss(z, t), "loss/val": objective.loss(z_val, t_val),
             "accuracy/train": objective.correct(z, t) / 500,
             **gradient_diagnostics(objective, z, t)}  # fmt: skip
    assert all(torch.equal(metrics[k], v) for k, v in alone.items()), (metrics, alone)
