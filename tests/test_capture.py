"""The training step as a CUDA graph (capture.py).

On the CPU, GraphedStep's bookkeeping runs with a stand-in for torch.cuda.CUDAGraph that keeps
a graph's contract: the capture leaves the step's outputs in static tensors, the first replay
makes the captured step's update, each later replay runs the step again into the same static
tensors. Against the eager steps: the same weights, logits and gradient norms, over epochs with
a partial last batch (eager) and a cosine schedule (the learning rate filled in place). The
real graphs are tested where CUDA is (skipped here, and in CI).
"""

import pytest
import torch

from helpers import make_cfg
from mlrefresh.capture import WARMUP, GraphedStep, capture_refusal
from mlrefresh.epoch import make_step, train_epoch
from mlrefresh.models import build_model
from mlrefresh.objective import Objective
from mlrefresh.optim import build_optimizer
from mlrefresh.runs.run import train
from mlrefresh.sweeps.stacked_model import StackedOptimizer, stack_models
from mlrefresh.sweeps.stacking import stacked_step


class CpuGraph:
    """A CUDA graph's contract, on the CPU (see the module docstring)."""

    def capture(self, fn, *args):
        self.fn, self.args = fn, args
        self.out = fn(*args)
        self.replays = 0
        return self.out

    def replay(self):
        self.replays += 1
        if self.replays > 1:  # the first replay is the captured step itself
            z, norms = self.fn(*self.args)
            self.out[0].copy_(z)
            for static, new in zip(self.out[1], norms):
                static.copy_(new)

    @staticmethod
    def warmup(fn, *args):
        return fn(*args)


class FailingGraph(CpuGraph):
    def capture(self, fn, *args):
        raise RuntimeError("operation not permitted when stream is capturing")


def _setup(stacked, momentum=0.9, name="sgd"):
    torch.manual_seed(0)
    models = [build_model("softmax", 5, 3, "normal", 0.5) for _ in range(2 if stacked else 1)]
    model = stack_models(models) if stacked else models[0]
    objective = Objective("ce", model)
    optim = {"name": name, "lr": 0.2, "schedule": "cosine"}
    optim.update({"momentum": momentum} if name == "sgd" else {"weight_decay": 0.01})
    if stacked:
        optimizer = StackedOptimizer([optim, {**optim, "lr": 0.05}], model.parameters(), 40)
        return model, objective, optimizer, optimizer.schedule
    optimizer, schedule = build_optimizer(optim, model.parameters(), 40)
    return model, objective, optimizer, schedule


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("graph_type", [CpuGraph, FailingGraph])
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_graphed_steps_equal_eager_steps(stacked, graph_type, name):
    x, y = torch.randn(70, 5), torch.randint(0, 3, (70,))  # 70 = 4 batches of 16 + 6
    runs = []
    for graphed in (False, True):
        model, objective, optimizer, schedule = _setup(stacked, name=name)
        if stacked:
            step = stacked_step(model, objective, optimizer, x, y, share=1)
        else:
            step = make_step(model, objective, optimizer, x, y)
        if graphed:
            step = GraphedStep(step, optimizer, "cpu", graph_type=graph_type)
        gen = torch.Generator().manual_seed(1)
        seen = []
        for epoch in range(3):
            perms = [torch.randperm(70, generator=gen) for _ in range(2 if stacked else 1)]
            perm = torch.stack(perms) if stacked else perms[0]
            seen.append(train_epoch(step, schedule, y, 16, perm, step0=epoch * 5))
        runs.append((model, seen, step))
    (eager, eager_seen, _), (graphed, graphed_seen, step) = runs
    assert (step.graph is not None) == (graph_type is CpuGraph)
    if graph_type is CpuGraph:
        assert step.graph.replays == 3 * 4 - WARMUP  # the partial batches ran eagerly
        rule = step.optimizer.rules[0] if stacked else step.optimizer
        assert isinstance(rule.lr, torch.Tensor)  # filled in place by the schedule
        if name == "adam":
            assert int(rule.t) == 3 * 5 and rule.state_dict()["t"] == 15
    else:
        assert step.refused.startswith("capture failed (operation not permitted")
    tol = 1e-6 if name == "sgd" else 1e-4  # Adam: its bias correction in float32 on the device
    for a, b in zip(eager.parameters(), graphed.parameters()):
        assert torch.allclose(a, b, atol=tol), (a - b).abs().max()
    for (za, ta, na), (zb, tb, nb) in zip(eager_seen, graphed_seen):
        assert torch.allclose(za, zb, atol=tol) and torch.equal(ta, tb)
        for step_a, step_b in zip(na, nb):
            assert all(torch.allclose(a, b, atol=tol) for a, b in zip(step_a, step_b))


def test_what_cannot_be_captured_is_said():
    model, _, sgd, _ = _setup(False)
    adam, _ = build_optimizer({"name": "adam", "lr": 0.1}, model.parameters(), 1)
    assert capture_refusal(sgd, "cpu") == "not a CUDA device"
    assert capture_refusal(sgd, "cuda") is None and capture_refusal(adam, "cuda") is None

    class Python:  # an update rule with Python state and no on_device
        pass

    assert capture_refusal(Python(), "cuda") == "Python keeps its per-step numbers in Python"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("optim", ["sgd", "adam"])
def test_cuda_graph_run_equals_eager_run(tmp_path, optim, caplog):
    common = ["device=cuda", "trainer.epochs=3", f"optim={optim}", "optim.schedule=cosine"]
    eager = train(make_cfg(*common, "trainer.cuda_graph=false"), run_dir=tmp_path / "eager")
    with caplog.at_level("INFO"):
        graphed = train(make_cfg(*common), run_dir=tmp_path / "graph")
    assert "captured as a CUDA graph after 3 eager steps" in caplog.text
    for key in ("loss/val", "accuracy/val", "nll/val"):
        assert abs(eager[key] - graphed[key]) < 1e-4
