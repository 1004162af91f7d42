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

import functools
import itertools
import logging
import os

import torch

from mlrefresh.epoch import batch, epoch_metrics, rows, step_norms, written_out
from mlrefresh.errors import UserError
from mlrefresh.runs.jobs import Job
from mlrefresh.runs.run import load, train_and_save
from mlrefresh.sweeps.stacked_model import StackedOptimizer, model_slice, stack_models, weight_grad
from mlrefresh.train import Training, seeded_model
from mlrefresh.validate import refuse_bad_config

__all__ = ["StackedTraining", "same_rows", "stacked_autograd_step", "stacked_linear_step",
           "stacked_step", "train_stacked"]  # fmt: skip

log = logging.getLogger(__name__)


def same_rows(seeds: list[int]) -> int:
    """r when every r consecutive jobs have one seed (so one batch order) and each seed is
    there r times; else 1. train_stacked orders its jobs by seed."""
    runs = [len(list(group)) for _, group in itertools.groupby(seeds)]
    distinct = len(set(seeds)) == len(runs)
    return runs[0] if distinct and len(set(runs)) == 1 else 1


def stacked_step(stack, objective, optimizer, x, t, share: int):
    """make_step for M stacked models: idx [M, B], a batch per model (each `share` consecutive
    models have the same batches: their inputs are read once); gradient norms per model. Linear
    models with a loss on their logits take the written-out step, as a run alone does."""
    if written_out(stack, objective):
        return stacked_linear_step(stack, objective, optimizer, x, t, share)
    return stacked_autograd_step(stack, objective, optimizer, x, t, share)


def stacked_autograd_step(stack, objective, optimizer, x, t, share: int):
    """stacked_step for any model and loss: the sum over jobs of each job's mean loss (so that
    each job's gradient is its own), its backward through autograd."""
    params = list(stack.parameters())

    def step(idx):
        z = stack(batch(x, idx[::share] if share > 1 else idx))
        loss = objective.loss(z.flatten(0, 1), rows(t, idx).flatten(0, 1)) * idx.shape[0]
        optimizer.zero_grad()
        loss.backward()
        norms = [torch.linalg.vector_norm(p.grad.flatten(1), dim=1) for p in params]
        optimizer.step()
        return z.detach(), norms

    return step


def stacked_linear_step(stack, objective, optimizer, x, t, share: int):
    """epoch.linear_step for M stacked linear models: each job's dL/dz by the loss Function's
    own backward over its own B rows (scale 1/B), dW by one batched product
    (stacked_model.weight_grad), db the sum of each job's rows. Each job's numbers are its run
    alone's, to the last bit at one thread (tests/test_stacked.py)."""
    weight, bias = stack.linear.weight, stack.linear.bias
    jobs = torch.tensor(float(weight.shape[0]), dtype=weight.dtype, device=weight.device)

    @torch.no_grad()
    def step(idx):
        inputs = batch(x, idx[::share] if share > 1 else idx)
        z = stack(inputs)
        m, b = idx.shape
        # the sum over jobs of each job's mean loss: the mean over M * B rows, times M
        dz = objective.logit_grad(z.flatten(0, 1), rows(t, idx).flatten(0, 1), jobs)
        dz = dz.view(m, b, -1)  # [M, B, outputs]
        weight.grad, bias.grad = weight_grad(dz, inputs, weight.shape), dz.sum(1)
        norms = [torch.linalg.vector_norm(p.flatten(1), dim=1) for p in (weight.grad, bias.grad)]
        optimizer.step()
        return z, norms

    # as linear_step's (the stack's .grad are then inference tensors: only its optimizer reads them)
    step.inference_mode = True
    return step


class StackedTraining(Training):
    """What core.fit works on, for M jobs: the core's Training of the stack, with its own
    optimizer (each job's settings), step, batch orders and per-job metrics."""

    def __init__(self, cfgs, data, models, generators):
        self.cfgs, self.generators = cfgs, generators
        self.live = list(range(len(models)))  # the jobs still training
        super().__init__(cfgs[0], data, stack_models(models))

    def build_optimizer(self, cfg, total_steps: int):
        optim = [c.optim for c in self.cfgs]
        optimizer = StackedOptimizer(optim, self.model.parameters(), total_steps)
        return optimizer, optimizer.schedule

    def make_step(self, x: torch.Tensor):
        share = same_rows([c.seed for c in self.cfgs])
        return stacked_step(self.model, self.objective, self.optimizer, x, self.t_train, share)

    def perm(self, n: int, device) -> torch.Tensor:
        """This epoch's batch order of every job, each from its own generator."""
        return torch.stack([torch.randperm(n, device=device, generator=g) for g in self.generators])

    def metrics(self, seen, z_val) -> dict:
        """Each live job's epoch metrics: {m: metrics as core.epoch_metrics gives them}."""
        z, t, norms = seen
        norms = step_norms(norms)  # [steps, parameters, M]
        return {m: epoch_metrics(self.objective, z[m], t[m], norms[..., m], z_val[m], self.t_val,
                                 self.p_val) for m in self.live}  # fmt: skip


def train_stacked(jobs: list[tuple]) -> dict:
    """Train (cfg, run_dir[, state[, overrides]]) jobs of one group (the stacked launcher's
    group_key: the same data, model shape, loss, batch size, epochs and optimizer kind) as one
    stacked model; with states (each job's own last.pt, all at one epoch: a resumed sweep) from
    that epoch on; with overrides (each job's Hydra overrides), kept in each last.pt.
    Returns {absolute run_dir: outcome}. A UserError before training (the data cannot be
    loaded, a last.pt that does not fit) is raised: the caller runs the jobs one by one."""
    jobs = sorted(jobs, key=lambda job: job[0].seed)  # one seed, one batch order: read once
    cfgs = [cfg for cfg, *_ in jobs]
    device, data_name, data_options = refuse_bad_config(cfgs[0])
    data = load(data_name, data_options, device)
    parts = [seeded_model(cfg, data) for cfg in cfgs]  # stack_models copies: these stay put
    states = [job[2] if len(job) > 2 else None for job in jobs]
    overrides = [job[3] if len(job) > 3 else None for job in jobs]  # each job's own (Job)
    run = None  # the stack's Training: made once the jobs' own states are in their models

    def state_of(m):
        return model_slice(run.model, m), run.optimizer.state_dict(m)

    group = [Job(cfg, run_dir, model, generator, str(device), state=state,
                 stack=(len(jobs), functools.partial(state_of, m)), overrides=job_overrides)
             for m, ((cfg, run_dir, *_), (model, generator), state, job_overrides)
             in enumerate(zip(jobs, parts, states, overrides))]  # fmt: skip
    run = StackedTraining(cfgs, data, [model for model, _ in parts], [g for _, g in parts])
    for m, state in enumerate(states):
        if state is not None:
            run.optimizer.load_state_dict(m, state["optimizer"])
    for job in group:
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
