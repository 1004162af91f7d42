"""Train the jobs of a sweep as one stacked model (hydra/launcher=stacked), each as if alone.

Jobs that differ only in seed, init, learning rate, momentum or weight decay (the launcher's
group_key) become one model of M stacked copies (stacked_model.py), trained by the core's
`fit` with the core's loss Functions, update rules and metrics: each job has its own seed,
batch order, settings, folder, event file, last.pt, model.pt and metrics.json, equal to its
run alone within float32 rounding. The loss is the sum over jobs of each job's mean loss, so
that each job's gradient is the one it would have alone.

`train_stacked` returns each job's outcome (its final metrics, or the error that ended it).
Its folder then holds what its run alone would have written; the job's own task function
(runs/run.py's train) finds its run finished there and logs its lines.

Example:
    >>> outcomes = train_stacked([(cfg_a, "sweep/0"), (cfg_b, "sweep/1")])  # doctest: +SKIP
    >>> outcomes[os.path.abspath("sweep/0")]["accuracy/val"]  # doctest: +SKIP
    0.994
"""

import copy
import itertools
import logging
import math
import os

import torch

from mlrefresh.capture import GraphedStep
from mlrefresh.epoch import epoch_metrics, rows, step_norms
from mlrefresh.errors import UserError
from mlrefresh.objective import Objective
from mlrefresh.runs.jobs import Job
from mlrefresh.runs.run import load, train_and_save
from mlrefresh.sweeps.stacked_model import StackedOptimizer, model_slice, stack_models
from mlrefresh.train import seeded_model
from mlrefresh.validate import refuse_bad_config

__all__ = ["StackedTraining", "same_rows", "stacked_step", "train_stacked"]

log = logging.getLogger(__name__)


def same_rows(seeds: list[int]) -> int:
    """r when every r consecutive jobs have one seed (so one batch order) and each seed is
    there r times; else 1. train_stacked orders its jobs by seed."""
    runs = [len(list(group)) for _, group in itertools.groupby(seeds)]
    distinct = len(set(seeds)) == len(runs)
    return runs[0] if distinct and len(set(runs)) == 1 else 1


def stacked_step(stack, objective, optimizer, x, t, share: int):
    """make_step for M stacked models: idx [M, B], a batch per model (each `share` consecutive
    models have the same batches: their inputs are read once); gradient norms per model."""
    params = list(stack.parameters())

    def step(idx):
        z = stack(rows(x, idx[::share] if share > 1 else idx))
        loss = objective.loss(z.flatten(0, 1), rows(t, idx).flatten(0, 1)) * idx.shape[0]
        optimizer.zero_grad()
        loss.backward()
        norms = [torch.linalg.vector_norm(p.grad.flatten(1), dim=1) for p in params]
        optimizer.step()
        return z.detach(), norms

    return step


class StackedTraining:
    """What core.fit works on, for M jobs: the stack, its objective, optimizer and step."""

    def __init__(self, cfgs, data, models, generators):
        self.generators = generators
        self.model = stack_models(models)
        self.objective = Objective(cfgs[0].loss.name, self.model)
        steps = cfgs[0].trainer.epochs * math.ceil(len(data.x_train) / cfgs[0].trainer.batch_size)
        self.optimizer = StackedOptimizer([c.optim for c in cfgs], self.model.parameters(), steps)
        self.schedule = self.optimizer.schedule
        self.t_train = self.objective.targets(data.y_train)
        self.t_val = self.objective.targets(data.y_val)
        self.p_val = data.posterior(data.x_val) if data.posterior is not None else None
        share = same_rows([c.seed for c in cfgs])
        step = stacked_step(
            self.model, self.objective, self.optimizer, data.x_train, self.t_train, share
        )
        device = data.x_train.device
        graphs = cfgs[0].trainer.get("cuda_graph", True) and device.type == "cuda"
        self.step = GraphedStep(step, self.optimizer, device) if graphs else step
        self.live = list(range(len(models)))  # the jobs still training

    def perm(self, n: int, device) -> torch.Tensor:
        """This epoch's batch order of every job, each from its own generator."""
        return torch.stack([torch.randperm(n, device=device, generator=g) for g in self.generators])

    def metrics(self, seen, z_val) -> dict:
        """Each live job's epoch metrics: {m: metrics as core.epoch_metrics gives them}."""
        z, t, norms = seen
        norms = step_norms(norms)  # [steps, parameters, M]
        return {m: epoch_metrics(self.objective, z[m], t[m], norms[..., m], z_val[m], self.t_val,
                                 self.p_val) for m in self.live}  # fmt: skip


def _jobs(jobs, data, device):
    """Each job's Job (quiet: its own Hydra job logs its lines), model and generator."""
    made = []
    for cfg, run_dir in jobs:
        model, generator = seeded_model(cfg, data)
        job = Job(cfg, run_dir, copy.deepcopy(model), generator, str(device), quiet=True)
        made.append((job, model, generator))
    return made


def train_stacked(jobs: list[tuple]) -> dict:
    """Train (cfg, run_dir) jobs of one group (the stacked launcher's group_key: the same data,
    model shape, loss, batch size, epochs and optimizer kind) as one stacked model. Returns
    {absolute run_dir: outcome}. A UserError before training (the data cannot be loaded) is
    raised: the caller runs the jobs one by one."""
    jobs = sorted(jobs, key=lambda job: job[0].seed)  # one seed, one batch order: read once
    cfgs = [cfg for cfg, _ in jobs]
    device, data_name, data_options = refuse_bad_config(cfgs[0])
    data = load(data_name, data_options, device)
    made = _jobs(jobs, data, device)
    group = [job for job, _, _ in made]
    run = StackedTraining(cfgs, data, [m for _, m, _ in made], [g for _, _, g in made])
    for m, job in enumerate(group):
        job.state_of = lambda m=m: (model_slice(run.model, m), run.optimizer.state_dict(m))
        job.copy_to_draw, job.extra = True, {"stack": len(group)}
        with job.own_files():  # an event file that cannot be made ends its job only
            job.open_writer()
    epochs = cfgs[0].trainer.epochs

    def on_epoch(epoch, metrics, z_val, elapsed):
        live = [m for m in run.live if group[m].outcome is None]
        values = torch.stack([torch.stack(list(metrics[m].values())) for m in live]).tolist()
        seconds = elapsed()  # after the one host sync, for every job
        for m, row in zip(live, values):
            job, named = group[m], dict(zip(metrics[m], row))
            if not job.diverged(named, epoch):
                with job.own_files():
                    job.epoch_done(epoch, named, data, z_val[m], seconds)
        run.live = [m for m in live if group[m].outcome is None]
        accuracy = [group[m].history[-1]["accuracy/val"] for m in run.live]
        if accuracy:
            low, high = min(accuracy), max(accuracy)
            log.info(f"stack of {len(group)}: epoch {epoch}/{epochs}, val accuracy {low:.2%}-"
                     f"{high:.2%}, {len(run.live)} training")  # fmt: skip
        return not run.live

    try:
        train_and_save(run, data, group, on_epoch)
    except UserError as exc:  # not one job's file: every job still running failed
        exc.kept = True
        for job in group:
            job.outcome = exc if job.outcome is None else job.outcome
    return {os.path.abspath(job.run_dir): job.outcome for job in group}
