"""Adding a loss, a model and a data set, as docs/extending.md says: a
copy of the project gets a hinge loss (losses.py + configs/loss/hinge.yaml) and a
quadratic-feature model (models.py + configs/model/quadratic.yaml), edited in exactly those
files, and trains them with `python scripts/train.py loss=hinge model=quadratic`; another copy
gets a data set of two rings (data/rings.py + configs/dataset/rings.yaml) and trains on it
(real processes on the copies)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, run_script

ROOT = Path(ROOT)

HINGE = '''

class HingeLoss(torch.autograd.Function):
    """L = 1/N sum_i max(0, 1 - s_i z_i) with s_i = 2 t_i - 1;  dL/dz_i = -s_i [s_i z_i < 1] / N."""

    @staticmethod
    def forward(z, t):
        return F.relu(1 - (2 * t - 1) * z).mean()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad):
        z, t = ctx.saved_tensors
        s = 2 * t - 1
        return -s * (s * z < 1).to(z.dtype) * (grad / z.shape[0]), None


def hinge_loss(z, t, *, check=True):
    """Hinge loss from logits z [N] and 0/1 targets t [N]."""
    return HingeLoss.apply(z, t.to(z.dtype))


LOSSES["hinge"] = Loss(hinge_loss, None, on_logits=True, units=frozenset({"sigmoid"}),
                       one_hot=False, is_nll=False)
'''

QUADRATIC = '''

class Quadratic(Model):
    """Logistic regression on the features x and x^2 (a boundary that can curve)."""

    name, unit, per_class = "quadratic", "sigmoid", False

    def __init__(self, num_features, num_classes, init: Init = "zeros", init_scale: Scale = 0.01):
        super().__init__(num_classes)
        self.linear = nn.Linear(2 * num_features, 1)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x):
        return self.layer(torch.cat([x, x * x], dim=-1), self.linear).squeeze(-1)


MODELS["quadratic"] = Quadratic
'''


PROBIT_UNIT = '''

def probit(z):
    """Phi(z), the standard normal's distribution function: a probability, 1/2 at z = 0."""
    return torch.special.ndtr(z)


UNITS["probit"] = Unit(probit, two_classes(torch.special.log_ndtr), half_at=0.0)
'''

PROBIT_MODEL = """

class Probit(LinearModel):
    name, unit, per_class = "probit", "probit", False


MODELS["probit"] = Probit
"""

DEEP_MLP = '''

class DeepMLP(Model):
    """x -> tanh(W1 x + b1) -> tanh(W2 h + b2) -> W3 h + b3 = z -> softmax; torch's own start
    for the hidden layers, the output layer at 0 (so no init_scale key)."""

    name, unit, per_class = "deep_mlp", "softmax", True
    inits = ("normal",)

    def __init__(self, num_features, num_classes, init: Init = "normal",
                 hidden: Annotated[int, rule(whole, low=1, high=1000, example=16)] = 16):
        super().__init__(num_classes)
        self.first = nn.Linear(num_features, hidden)
        self.second = nn.Linear(hidden, hidden)
        self.linear = nn.Linear(hidden, num_classes)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x):
        h = torch.tanh(self.layer(x, self.first))
        return self.layer(torch.tanh(self.layer(h, self.second)), self.linear)


MODELS["deep_mlp"] = DeepMLP
'''

RINGS = '''"""Rings: two concentric rings of radius 1 and 2; a circle parts them, no line does."""

import math

import torch

from mlrefresh.data.dataset import Dataset, dataset
from mlrefresh.data.synthetic import Seed, Size, Spread, generated


@dataset(num_classes=2)
def rings(
    n_train: Size = 1000, n_val: Size = 1000, std: Spread = 0.1, seed: Seed = 0, *, device="cpu"
) -> Dataset:
    gen = torch.Generator().manual_seed(seed)

    def draw(n):
        y = torch.arange(n) % 2
        angle = 2 * math.pi * torch.rand(n, generator=gen)
        radius = 1.0 + y + std * torch.randn(n, generator=gen)
        return torch.stack([radius * angle.cos(), radius * angle.sin()], 1), y

    tensors = (*draw(n_train), *draw(n_val))
    return generated("rings", tensors, 2, f"rings of radius 1 and 2, std {std}", None, device)
'''


def project_copy(tmp_path) -> Path:
    copy = tmp_path / "project"
    for part in ("src", "scripts"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    os.symlink(os.readlink(ROOT / "configs"), copy / "configs")  # a link into src/, as in ROOT
    return copy


def add_yaml(copy: Path, group: str, name: str, usage: str) -> None:
    """configs/<group>/<name>.yaml as docs/extending.md writes it: a usage line and its schema."""
    (copy / "configs" / group / f"{name}.yaml").write_text(
        f"# Usage: python scripts/train.py {usage}\n"
        f"defaults:\n  - /schema/{group}/{name}@_here_\n  - _self_\n"
    )


def train_in(copy: Path, *args):
    """`python scripts/train.py <args>` in the copy, its src/ first on the path."""
    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    return run_script("scripts/train.py", *args, cwd=copy, env=env)


def test_a_new_loss_and_a_new_model_are_two_files_and_two_yamls(tmp_path):
    copy = project_copy(tmp_path)
    with open(copy / "src/mlrefresh/losses.py", "a") as f:
        f.write(HINGE)
    with open(copy / "src/mlrefresh/models.py", "a") as f:
        f.write(QUADRATIC)
    add_yaml(copy, "loss", "hinge", "loss=hinge model=logistic")
    add_yaml(copy, "model", "quadratic", "model=quadratic")
    run = tmp_path / "run"
    result = train_in(copy, "loss=hinge", "model=quadratic", "trainer.epochs=5",
                      "dataset.n_train=400", "device=cpu", f"hydra.run.dir={run}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy/val"] > 0.95 and metrics["loss/val"] < 0.5  # 1 at the start (z = 0)
    assert "epoch 5/5" in (run / "train.log").read_text()
    refused = train_in(copy, "loss=hinge", "model=linear", f"hydra.run.dir={run}2")
    assert refused.returncode == 2 and refused.stderr.startswith("error: loss=hinge pairs with")
    assert not (tmp_path / "run2").exists()


def test_a_new_data_set_is_one_module_and_one_yaml(tmp_path):
    copy = project_copy(tmp_path)
    (copy / "src/mlrefresh/data/rings.py").write_text(RINGS)
    add_yaml(copy, "dataset", "rings", "dataset=rings model=mlp")
    run = tmp_path / "run"
    result = train_in(copy, "dataset=rings", "model=mlp", "trainer.epochs=10", "device=cpu",
                      f"hydra.run.dir={run}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "metrics.json").read_text())["accuracy/val"] > 0.95
    assert "rings of radius 1 and 2, std 0.1" in (run / "train.log").read_text()
    # its options' types and ranges came with the module
    refused = train_in(copy, "dataset=rings", "dataset.std=-1", f"hydra.run.dir={run}2")
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: dataset.std=-1 must be a finite number > 0")
    assert not (tmp_path / "run2").exists()


def test_a_new_unit_and_a_deeper_model_follow_the_contract(tmp_path):
    """A probit unit (units.py) with its model (models.py): it decides at its own threshold
    (Phi(z) = 1/2 at z = 0), has an NLL from its log-probabilities, and is refused with
    cross-entropy, which is computed from the sigmoid's and softmax's logits. A two-hidden-layer
    MLP without init_scale: it trains on XOR and refuses model.init=wrong in one line."""
    copy = project_copy(tmp_path)
    with open(copy / "src/mlrefresh/units.py", "a") as f:
        f.write(PROBIT_UNIT)
    with open(copy / "src/mlrefresh/models.py", "a") as f:
        f.write(PROBIT_MODEL + DEEP_MLP)
    add_yaml(copy, "model", "probit", "model=probit loss=square")
    add_yaml(copy, "model", "deep_mlp", "model=deep_mlp dataset=xor")
    runs, commands = (
        {},
        {
            "probit": ("model=probit", "loss=square"),
            "logistic": ("model=logistic", "loss=square"),
            "deep": ("model=deep_mlp", "dataset=xor", "trainer.epochs=30"),
        },
    )
    for name, args in commands.items():
        result = train_in(copy, *args, "device=cpu", f"hydra.run.dir={tmp_path / name}")
        assert result.returncode == 0, result.stderr
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    probit, logistic = runs["probit"], runs["logistic"]
    # the blobs are well apart: both units find the boundary (99.5%), the probit one at its own
    # z = 0 (read at z >= 1/2, as before the contract, it was 99.1%)
    assert probit["accuracy/val"] >= logistic["accuracy/val"] - 0.002 > 0.98
    decides = (
        "from mlrefresh.models import build_model; print(build_model('probit', 2, 2).threshold)"
    )
    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    threshold = subprocess.run([sys.executable, "-c", decides], env=env, capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
    assert threshold == "0.0\n"
    assert 0 < probit["nll/val"] < 0.1 and "kl/val" in probit  # a probability: NLL and KL
    assert runs["deep"]["accuracy/val"] > 0.95 and runs["deep"]["nll/val"] < 0.3
    refusals = {("model=probit", "loss=ce"): "error: loss=ce pairs with the sigmoid, softmax unit",
                ("model=deep_mlp", "model.init=wrong"):
                    "error: model=deep_mlp takes model.init=normal, not wrong; model.init=wrong "
                    "is for the linear models"}  # fmt: skip
    for args, line in refusals.items():
        refused = train_in(copy, *args, f"hydra.run.dir={tmp_path / 'refused'}")
        assert refused.returncode == 2 and refused.stderr.startswith(line), refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "refused").exists()
