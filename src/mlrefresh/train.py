"""The training loop of one model: build it from a config, then epochs of mini-batch steps.

`Training(cfg, data)` is what the loop works on: the model (seeded as `seed` says), its
objective (loss + metrics), optimizer and learning-rate schedule, the step (make_step, or its
CUDA-graph replay on a GPU) and the generator of the batch order. `fit` runs the epochs after
`first_epoch - 1`: each epoch shuffles, steps with no host sync, computes every metric on the
device and hands them to `on_epoch`, which reads them (the one sync), logs and saves.

This file knows nothing of run folders, signals or sweeps: runs/run.py gives `train(cfg)` its
files and its Ctrl-C, and sweeps/stacking.py trains M jobs as one stacked model through the
same `fit`.

Example:
    >>> import torch
    >>> from omegaconf import OmegaConf
    >>> from mlrefresh.data import load_dataset
    >>> cfg = OmegaConf.create({"seed": 0, "model": {"name": "logistic", "init": "zeros",
    ...     "init_scale": 0.01}, "loss": {"name": "ce"}, "optim": {"name": "sgd", "lr": 0.5},
    ...     "trainer": {"epochs": 2, "batch_size": 50}})
    >>> data = load_dataset("blobs", n_train=200, n_val=100)
    >>> run = Training(cfg, data)
    >>> seen = []
    >>> _ = fit(run, data, 2, 50, 1, lambda epoch, m, z, t: seen.append(m["accuracy/val"]))
    >>> [round(float(a), 2) for a in seen]
    [0.98, 0.98]
"""

import math
import sys
import time

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from mlrefresh.capture import GraphedStep
from mlrefresh.epoch import epoch_metrics, make_step, step_norms, train_epoch
from mlrefresh.models import build_model, model_options, wrong_start
from mlrefresh.objective import Objective
from mlrefresh.optim import build_optimizer
from mlrefresh.schema import complete

__all__ = ["Training", "fit", "seeded_model"]


def seeded_model(cfg, data):
    """The model and the batch-order generator of `cfg`, seeded as the run alone is."""
    device = data.x_train.device
    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    options = model_options(cfg.model)
    model = build_model(cfg.model.name, data.num_features, data.num_classes, **options)
    model = model.to(device)
    if options.get("init") == "wrong":
        wrong_start(model, data.x_train, data.y_train, options["init_scale"])
    return model, generator


class Training:
    """One model with its objective, optimizer, schedule and step, on `data`'s device.
    (sweeps/stacking.py's StackedTraining replaces the optimizer, the step, the batch order
    and the metrics for M stacked models; the rest is this.)"""

    def __init__(self, cfg, data, model=None, generator=None):
        cfg = complete(cfg)  # a config written by hand: what it leaves out at its default
        if model is None:
            model, generator = seeded_model(cfg, data)
        self.model, self.generator = model, generator
        self.objective = Objective(cfg.loss.name, model)
        steps = cfg.trainer.epochs * math.ceil(len(data.x_train) / cfg.trainer.batch_size)
        self.optimizer, self.schedule = self.build_optimizer(cfg, steps)
        self.t_train = self.objective.targets(data.y_train)
        self.t_val = self.objective.targets(data.y_val)
        self.p_val = data.posterior(data.x_val) if data.posterior is not None else None
        step = self.make_step(data.step_inputs)
        device = data.x_train.device
        graphs = cfg.trainer.cuda_graph and device.type == "cuda"
        self.step = GraphedStep(step, self.optimizer, device) if graphs else step

    def build_optimizer(self, cfg, total_steps: int):
        return build_optimizer(cfg.optim, self.model.parameters(), total_steps)

    def make_step(self, x: torch.Tensor):
        return make_step(self.model, self.objective, self.optimizer, x, self.t_train)

    def perm(self, n: int, device) -> torch.Tensor:
        """This epoch's batch order."""
        return torch.randperm(n, device=device, generator=self.generator)

    def metrics(self, seen, z_val) -> dict:
        """The epoch's metrics (0-dim device tensors) from what train_epoch kept."""
        z, t, norms = seen
        return epoch_metrics(self.objective, z, t, step_norms(norms), z_val, self.t_val,
                             self.p_val)  # fmt: skip


def fit(run, data, epochs, batch_size, first_epoch, on_epoch, stop=lambda: False):
    """Epochs first_epoch..epochs of `run` (a Training, or anything with its perm, step,
    schedule, t_train, model and metrics). After each: on_epoch(epoch, metrics, z_val,
    elapsed), which returns True to end training (elapsed() is the seconds since the start,
    to be read after the metrics). Returns (seconds, the epoch stop() ended in,
    or None)."""
    steps_per_epoch = math.ceil(len(data.x_train) / batch_size)
    start = time.perf_counter()
    with logging_redirect_tqdm():
        show = sys.stdout.isatty()
        for epoch in tqdm(range(first_epoch, epochs + 1), desc="epochs", disable=not show):
            perm = run.perm(len(data.x_train), data.x_train.device)
            step0 = (epoch - 1) * steps_per_epoch
            seen = train_epoch(run.step, run.schedule, run.t_train, batch_size, perm, step0, stop)
            if seen is None:
                return time.perf_counter() - start, epoch
            with torch.no_grad():
                z_val = run.model(data.x_val)
            metrics = run.metrics(seen, z_val)
            if on_epoch(epoch, metrics, z_val, lambda: time.perf_counter() - start):
                break
    return time.perf_counter() - start, None
