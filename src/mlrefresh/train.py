"""train(cfg): build data, model, loss and optimizer from a config, train, log, save.

Epochs of shuffled mini-batches over tensors already on the device (the steps and metrics are
epoch.py's). After each epoch: the log line, the event file, and last.pt (checkpoint.save_last),
so that Ctrl-C or SIGTERM (honoured at the next step boundary) loses at most the current epoch
and `trainer.resume=<run dir>` continues exactly (resume.py).

`train_stacked(jobs)` trains the jobs of a sweep that differ only in seed, init, learning rate,
momentum or weight decay as one stacked model (hydra/launcher=stacked): the same loop with M
models, each job its own batch order, folder, event file, log, last.pt, model.pt and
metrics.json. A job's outcome waits for its Hydra job: `train(cfg, run_dir)` then logs the
job's lines and returns its result (or raises its error), so the job ends as any other.

Example (the same as `python scripts/train.py trainer.epochs=3`, run from Python):
    >>> from hydra import compose, initialize_config_dir
    >>> with initialize_config_dir("/abs/path/configs", version_base="1.3"):  # doctest: +SKIP
    ...     cfg = compose("train", overrides=["trainer.epochs=3"])
    >>> train(cfg, run_dir="/tmp/run")["accuracy/val"]  # doctest: +SKIP
    0.994
"""

import itertools
import json
import logging
import math
import os
import sys
import time

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from mlrefresh.capture import GraphedStep
from mlrefresh.data import load_dataset
from mlrefresh.epoch import epoch_metrics, log_line, make_step, step_norms, train_epoch
from mlrefresh.errors import UserError
from mlrefresh.models import build_model, model_slice, stack_models, wrong_start
from mlrefresh.objective import Objective
from mlrefresh.optim import build_optimizer
from mlrefresh.runs import signals
from mlrefresh.runs.jobs import Job, interrupted
from mlrefresh.runs.resume import command_line_keys, resume_config
from mlrefresh.validate import refuse_bad_config

__all__ = ["train", "train_stacked"]

log = logging.getLogger(__name__)
_outcomes: dict[str, Job] = {}  # run folder -> a stacked job, finished, waiting for its Hydra job


def _run_dir(run_dir):
    if run_dir is not None:
        return str(run_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return HydraConfig.get().runtime.output_dir
    raise ValueError("train(cfg) outside a Hydra app needs run_dir=<folder for the run's files>")


def _same_rows(seeds: list[int]) -> int:
    """r when every r consecutive jobs have one seed (so one batch order) and each seed is
    there r times; else 1. train_stacked orders its jobs by seed."""
    runs = [len(list(group)) for _, group in itertools.groupby(seeds)]
    distinct = len(set(seeds)) == len(runs)
    return runs[0] if distinct and len(set(runs)) == 1 else 1


class _Run:
    """What the epoch loop works on: one model, or M stacked, with its objective and optimizer,
    and the jobs (one per model)."""

    def __init__(self, jobs: list[Job], data):
        self.jobs, self.data = jobs, data
        cfg = jobs[0].cfg
        self.stacked = len(jobs) > 1
        models = [job.model for job in jobs]
        self.model = stack_models(models) if self.stacked else models[0]
        self.objective = Objective(cfg.loss.name, self.model)
        steps = cfg.trainer.epochs * math.ceil(len(data.x_train) / cfg.trainer.batch_size)
        optim = [job.cfg.optim for job in jobs] if self.stacked else cfg.optim
        self.optimizer, self.schedule = build_optimizer(optim, self.model.parameters(), steps)
        for m, job in enumerate(jobs):
            job.attach(self, m)
        self.t_train = self.objective.targets(data.y_train)
        step = make_step(self.model, self.objective, self.optimizer, data.x_train, self.t_train,
                         self.stacked, _same_rows([job.cfg.seed for job in jobs]))  # fmt: skip
        graphs = cfg.trainer.get("cuda_graph", True) and data.x_train.device.type == "cuda"
        self.step = GraphedStep(step, self.optimizer, data.x_train.device) if graphs else step

    def perm(self, n, device) -> torch.Tensor:
        """This epoch's batch order of every model, each from its own job's generator."""
        perms = [torch.randperm(n, device=device, generator=job.generator) for job in self.jobs]
        return torch.stack(perms) if self.stacked else perms[0]

    def model_state(self, m) -> dict:
        return model_slice(self.model, m) if self.stacked else self.model.state_dict()

    def optimizer_state(self, m) -> dict:
        return self.optimizer.state_dict(m if self.stacked else None)


def _fit(run: _Run):
    """The epochs after the saved ones: train, measure, check each model for divergence, log,
    checkpoint. Each job's outcome (its error) goes to job.outcome; returns the seconds."""
    data, jobs, objective, stacked = run.data, run.jobs, run.objective, run.stacked
    cfg = jobs[0].cfg
    t_val = objective.targets(data.y_val)
    p_val = data.posterior(data.x_val) if data.posterior is not None else None
    epochs, batch_size = cfg.trainer.epochs, cfg.trainer.batch_size
    steps_per_epoch = math.ceil(len(data.x_train) / batch_size)
    start, first = time.perf_counter(), jobs[0].saved_epoch + 1
    show = sys.stdout.isatty()
    with logging_redirect_tqdm():
        for epoch in tqdm(range(first, epochs + 1), desc="epochs", disable=not show):
            perm = run.perm(len(data.x_train), data.x_train.device)
            step0 = (epoch - 1) * steps_per_epoch
            seen = train_epoch(run.step, run.schedule, run.t_train, batch_size, perm, step0)
            live = [job for job in jobs if job.outcome is None]
            if seen is None:
                for job in live:
                    job.outcome = interrupted(job, epoch, epochs)
                break
            with torch.no_grad():
                z_val = run.model(data.x_val)
            norms = step_norms(seen[2])
            each = [(seen[0], seen[1], z_val)] if not stacked else [
                (seen[0][m], seen[1][m], z_val[m]) for m in range(len(jobs))
            ]  # fmt: skip
            metrics = [epoch_metrics(objective, each[j.index][0], each[j.index][1],
                                     norms[..., j.index], each[j.index][2], t_val, p_val)
                       for j in live]  # fmt: skip
            rows = torch.stack([torch.stack(list(m.values())) for m in metrics]).tolist()
            seconds = time.perf_counter() - start  # after the one host sync, for every model
            for job, names, row in zip(live, metrics, rows):
                values = dict(zip(names, row))
                if not job.diverged(values, epoch):
                    job.log(log_line(epoch, epochs, values))
                    with job.own_files():
                        job.epoch_done(epoch, values, data, each[job.index][2], seconds)
            if all(job.outcome is not None for job in jobs):
                break
    return time.perf_counter() - start


def _train_and_save(run: _Run) -> None:
    """The epochs, then each job's model.pt and metrics.json (job.outcome: the final metrics);
    a signal meanwhile waits for a safe point."""
    with signals.deferred():  # a signal stops the loop at a step boundary, or waits for a save
        try:
            seconds = _fit(run)
        finally:
            for job in run.jobs:
                job.close_writer(job.outcome is None)
        for job in run.jobs:
            if job.outcome is None:
                with job.own_files():
                    job.outcome = job.save(run.data.x_train.device, seconds)
    if signals.pending() is not None:
        for job in run.jobs:
            if isinstance(job.outcome, dict):
                exc = signals.Interrupted(signals.pending(), f"interrupted after the last epoch; "
                                          f"the results are saved in {job.run_dir}")  # fmt: skip
                exc.kept = True
                job.outcome = exc


def _finished(run_dir, state, epochs):
    path = os.path.join(run_dir, "metrics.json")
    if state["epoch"] < epochs or not os.path.exists(path):
        return None
    with open(path) as f:
        result = json.load(f)
    log.info("%s finished all %d epochs already; nothing to do (trainer.epochs=N extends it)",
             run_dir, epochs)  # fmt: skip
    return result


def _load(cfg, data_name, data_options, device):
    try:
        return load_dataset(data_name, device=device, cache=True, **data_options)
    except signals.Interrupted as exc:
        raise signals.Interrupted(
            exc.signum, f"{exc} while loading the data; nothing saved"
        ) from None


def _job(cfg, run_dir, device, data, state=None, keep_log=False) -> Job:
    """A job's own part: its generator and model, seeded as the run alone would be."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    m = cfg.model
    model = build_model(m.name, data.num_features, data.num_classes, m.init, m.init_scale,
                        m.get("hidden", 16), m.get("activation", "tanh")).to(device)  # fmt: skip
    if m.init == "wrong":
        wrong_start(model, data.x_train, data.y_train, m.init_scale)
    return Job(cfg, run_dir, model, generator, str(device), state=state, keep_log=keep_log)


def _outcome(job: Job):
    if isinstance(job.outcome, BaseException):
        raise job.outcome
    return job.outcome


def train(cfg, run_dir=None) -> dict:
    """Train the configured model; returns the final metrics (also in run_dir/metrics.json).
    With trainer.resume=<run dir>, continue that run in its folder (see resume.py)."""
    if run_dir is not None and (job := _outcomes.pop(os.path.abspath(run_dir), None)):
        job.replay_log()  # trained by train_stacked: its lines, then its outcome
        return _outcome(job)
    state = None
    if cfg.trainer.get("resume"):
        cfg, state = resume_config(cfg, command_line_keys())
        run_dir = cfg.trainer.resume
    run_dir = _run_dir(run_dir)
    device, data_name, data_options = refuse_bad_config(cfg)
    if state is not None and (done := _finished(run_dir, state, cfg.trainer.epochs)):
        return done
    torch.manual_seed(cfg.seed)  # as before loading: the data's own seed decides the data
    data = _load(cfg, data_name, data_options, device)
    job = _job(cfg, run_dir, device, data, state=state)
    run = _Run([job], data)  # a last.pt that does not fit is refused here, before any line
    log.info("%s on %s", data.description, device)
    if state is not None:
        log.info("resuming %s after epoch %d/%d", run_dir, job.saved_epoch, cfg.trainer.epochs)
    job.open_writer()
    try:
        _train_and_save(run)
    except UserError as exc:
        exc.kept = True  # the run did work: its folder stays (the event file, the log)
        raise
    return _outcome(job)


def train_stacked(jobs: list[tuple]) -> None:
    """Train (cfg, run_dir) jobs of one group (stacked_launcher.group_key: the same data, model
    shape, loss, batch size, epochs and optimizer kind) as one stacked model. Each job's outcome
    waits in this process for `train(cfg, run_dir)` of its Hydra job. A UserError before
    training (the data cannot be loaded) is raised: the caller runs the jobs one by one."""
    jobs = sorted(jobs, key=lambda job: job[0].seed)  # one seed, one batch order: read once
    cfg = jobs[0][0]
    device, data_name, data_options = refuse_bad_config(cfg)
    data = _load(cfg, data_name, data_options, device)
    group = [_job(c, _run_dir(d), device, data, keep_log=True) for c, d in jobs]
    for job in group:
        job.log(f"{data.description} on {device}")
        job.log(f"trained stacked with {len(group) - 1} other job(s) of this sweep")
    run = _Run(group, data)
    for job in group:
        with job.own_files():  # an event file that cannot be made ends its job only
            job.open_writer()
    try:
        _train_and_save(run)
    except UserError as exc:  # not one job's file: every job still running failed
        exc.kept = True
        for job in group:
            job.outcome = exc if job.outcome is None else job.outcome
    for job in group:
        _outcomes[os.path.abspath(job.run_dir)] = job
