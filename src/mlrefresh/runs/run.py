"""train(cfg): one run in its folder: check the config, load the data, train, log, save.

The lecture's loop is mlrefresh/train.py; this file gives it a run's folder and files (jobs.py),
its log lines, Ctrl-C and SIGTERM (honoured at the next step boundary, see signals.py), and
resume. After each epoch: the log line, the event file, and last.pt, so that an interrupted
run loses at most the current epoch and `trainer.resume=<run dir>` continues exactly
(resume.py). A folder that already holds this very run's last.pt (the same resolved config:
a job trained in a stack, see sweeps/stacking.py) is continued in place, and one whose run
finished returns its saved results without training again.

Example (the same as `python scripts/train.py trainer.epochs=3`, run from Python):
    >>> from hydra import compose, initialize_config_dir
    >>> with initialize_config_dir("/abs/path/configs", version_base="1.3"):  # doctest: +SKIP
    ...     cfg = compose("train", overrides=["trainer.epochs=3"])
    >>> train(cfg, run_dir="/tmp/run")["accuracy/val"]  # doctest: +SKIP
    0.994
"""

import logging
import os

import torch

from mlrefresh.data import load_dataset
from mlrefresh.epoch import log_line
from mlrefresh.errors import ResumeError, UserError
from mlrefresh.runs import signals
from mlrefresh.runs.jobs import Job, interrupted
from mlrefresh.runs.records import Damaged, read_metrics
from mlrefresh.runs.resume import command_line_keys, own_last, resume_config
from mlrefresh.schema import complete
from mlrefresh.train import Training, fit, seeded_model
from mlrefresh.validate import refuse_bad_config

__all__ = ["load", "train", "train_and_save"]

log = logging.getLogger("mlrefresh.train")


def _run_dir(run_dir):
    if run_dir is not None:
        return str(run_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return HydraConfig.get().runtime.output_dir
    raise ValueError("train(cfg) outside a Hydra app needs run_dir=<folder for the run's files>")


def load(data_name, data_options, device):
    """The data set, or Interrupted in one line when a signal came while loading."""
    try:
        return load_dataset(data_name, device=device, cache=True, **data_options)
    except signals.Interrupted as exc:
        raise signals.Interrupted(
            exc.signum, f"{exc} while loading the data; nothing saved"
        ) from None


def _stacked_lines(state, epochs, run_dir) -> None:
    """The lines of the epochs a stack trained for this job (sweeps/stacking.py), now; after
    the epoch it resumed from, when the stack continued a resumed sweep's jobs."""
    after = state.get("stack_from", 0)
    if after:
        log.info("resuming %s after epoch %d/%d", run_dir, after, epochs)
    log.info("trained stacked with %d other job(s) of this sweep", state["stack"] - 1)
    for epoch, values in enumerate(state["history"], 1):
        if epoch > after:
            log.info(log_line(epoch, epochs, values))


def _finished(run_dir, state, epochs):
    """The saved results of a run that finished all its epochs already, with its lines."""
    path = os.path.join(run_dir, "metrics.json")
    if state["epoch"] < epochs or not os.path.exists(path):
        return None
    try:
        result = read_metrics(path)
    except Damaged as exc:
        raise ResumeError(
            f"{exc}: the run finished, but its results cannot be read; put its metrics.json "
            f"back, or move {run_dir} away to train it again"
        ) from None
    if state.get("stack"):
        _stacked_lines(state, epochs, run_dir)
        log.info("val accuracy %.2f%% after %.2f s in %s", 100 * result["accuracy/val"],
                 result["train_seconds"], run_dir)  # fmt: skip
    else:
        log.info("%s finished all %d epochs already; its results are kept (not trained again)",
                 run_dir, epochs)  # fmt: skip
    return result


def train_and_save(run, data, jobs, on_epoch) -> float:
    """fit(), then each job's model.pt and metrics.json (job.outcome: the final metrics, or the
    error that ended the job); a signal meanwhile waits for a safe point. Returns the seconds."""
    cfg = jobs[0].cfg
    stop = lambda: signals.pending() is not None  # noqa: E731 (Ctrl-C, SIGTERM)
    with signals.deferred():
        try:
            first = jobs[0].saved_epoch + 1
            seconds, stopped = fit(run, data, cfg.trainer.epochs, cfg.trainer.batch_size, first,
                                   on_epoch, stop)  # fmt: skip
            for job in jobs:
                if stopped is not None and job.outcome is None:
                    job.outcome = interrupted(job, stopped, cfg.trainer.epochs)
        finally:
            for job in jobs:
                job.close_writer(job.outcome is None)
        for job in jobs:
            if job.outcome is None:
                with job.own_files():
                    job.outcome = job.save(data.x_train.device, seconds)
    if signals.pending() is not None:
        for job in jobs:
            if isinstance(job.outcome, dict):
                exc = signals.Interrupted(signals.pending(), f"interrupted after the last epoch; "
                                          f"the results are saved in {job.run_dir}")  # fmt: skip
                exc.kept = True
                job.outcome = exc
    return seconds


def train(cfg, run_dir=None) -> dict:
    """Train the configured model; returns the final metrics (also in run_dir/metrics.json).
    With trainer.resume=<run dir>, continue that run in its folder (see resume.py)."""
    cfg = complete(cfg)  # a config written by hand: the keys it leaves out at their defaults
    state = None
    if cfg.trainer.resume:
        cfg, state = resume_config(cfg, command_line_keys())
        run_dir = cfg.trainer.resume
    run_dir = _run_dir(run_dir)
    device, data_name, data_options = refuse_bad_config(cfg)
    state = state or own_last(run_dir, cfg)
    if state is not None and (done := _finished(run_dir, state, cfg.trainer.epochs)):
        return done
    if state is not None and state.get("stack"):
        _stacked_lines(state, cfg.trainer.epochs, run_dir)  # the stack stopped early: on alone
    torch.manual_seed(cfg.seed)  # as before loading: the data's own seed decides the data
    data = load(data_name, data_options, device)
    model, generator = seeded_model(cfg, data)
    job = Job(cfg, run_dir, model, generator, str(device), state=state)
    run = Training(cfg, data, model, generator)
    job.restore_optimizer(run.optimizer)  # a last.pt that does not fit: refused, before any line
    log.info("%s on %s", data.description, device)
    if state is not None:
        log.info("resuming %s after epoch %d/%d", run_dir, job.saved_epoch, cfg.trainer.epochs)
    job.open_writer()

    def on_epoch(epoch, metrics, z_val, elapsed):
        values = dict(zip(metrics, torch.stack(list(metrics.values())).tolist()))  # one sync
        if not job.diverged(values, epoch):
            job.log(log_line(epoch, cfg.trainer.epochs, values))
            with job.own_files():
                job.epoch_done(epoch, values, data, z_val, elapsed())
        return job.outcome is not None

    try:
        train_and_save(run, data, [job], on_epoch)
    except UserError as exc:
        exc.kept = True  # the run did work: its folder stays (the event file, the log)
        raise
    if isinstance(job.outcome, BaseException):
        raise job.outcome
    return job.outcome
