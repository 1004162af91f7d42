"""Adding a loss and a model, as README's "Adding a loss, a dataset, a model" says: a copy of the
project gets a hinge loss (losses.py + configs/loss/hinge.yaml) and a quadratic-feature model
(models.py + configs/model/quadratic.yaml), edited in exactly those files, and trains them with
`python scripts/train.py loss=hinge model=quadratic` (a real process on the copy)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

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


def test_a_new_loss_and_a_new_model_are_two_files_and_two_yamls(tmp_path):
    copy = tmp_path / "project"
    for part in ("src", "configs", "scripts"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "src/mlrefresh/losses.py", "a") as f:
        f.write(HINGE)
    with open(copy / "src/mlrefresh/models.py", "a") as f:
        f.write(QUADRATIC)
    (copy / "configs/loss/hinge.yaml").write_text(
        "# Usage: python scripts/train.py loss=hinge model=logistic\n"
        "defaults:\n  - /schema/loss/hinge@_here_\n  - _self_\n"
    )
    (copy / "configs/model/quadratic.yaml").write_text(
        "# Usage: python scripts/train.py model=quadratic\n"
        "defaults:\n  - /schema/model/quadratic@_here_\n  - _self_\n"
    )
    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "scripts/train.py", "loss=hinge", "model=quadratic", "trainer.epochs=5",
         "dataset.n_train=400", "device=cpu", f"hydra.run.dir={run}"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy/val"] > 0.95 and metrics["loss/val"] < 0.5  # 1 at the start (z = 0)
    assert "epoch 5/5" in (run / "train.log").read_text()
    refused = subprocess.run(
        [sys.executable, "scripts/train.py", "loss=hinge", "model=linear", f"hydra.run.dir={run}2"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert refused.returncode == 2 and refused.stderr.startswith("error: loss=hinge pairs with")
    assert not (tmp_path / "run2").exists()
