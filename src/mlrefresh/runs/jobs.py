"""A job's own part of training: its config, folder, log, event file, last.pt and results.

An ordinary run is one job (runs/run.py); a stacked sweep (sweeps/stacking.py) trains M jobs
as one model. Either way each job keeps what a run alone would have: its history, its
TensorBoard writer, its last.pt after each epoch, and at the end its model.pt and
metrics.json. Where the job's weights live is the trainer's business: `state_of` gives the
job's model and optimizer state (its own model, or its slice of a stack).

Example (what train() does with it, in short):
    >>> job = Job(cfg, run_dir, model, generator, "cpu")  # doctest: +SKIP
    >>> job.open_writer()  # doctest: +SKIP
    >>> job.epoch_done(epoch, values, data, z_val, seconds)  # after each epoch  # doctest: +SKIP
"""

import contextlib
import logging
import math
import os
import shlex

import torch
from omegaconf import OmegaConf

from mlrefresh.checks import flatten
from mlrefresh.errors import DivergedError, OutputError, UserError
from mlrefresh.runs import signals
from mlrefresh.runs.checkpoint import save_json, save_last, save_torch, saved_config, to_cpu
from mlrefresh.runs.console import command
from mlrefresh.runs.resume import check_tensors

__all__ = ["Job", "interrupted"]

log = logging.getLogger("mlrefresh.train")


def _diverged(value, epoch, cfg, run_dir) -> str:
    todo = f"lower optim.lr (now {cfg.optim.lr})"
    if cfg.model.get("init", "zeros") != "zeros" and "init_scale" in cfg.model:
        todo += f" or model.init_scale (now {cfg.model.init_scale})"
    done = epoch - 1
    kept = f"epoch{'s 1-' if done > 1 else ' '}{done} logged in {run_dir}" if done else ""
    kept = kept or "no epoch finished before it"
    return f"the loss became {value} in epoch {epoch}: training diverged; {todo}. {kept}"


def _sweep_dir() -> str | None:
    """The sweep folder when this job is part of a multirun (Hydra's -m)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return os.path.abspath(str(HydraConfig.get().sweep.dir))


def _job_overrides() -> list[str] | None:
    """The overrides of the Hydra job this process runs (the command line's), or None."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return [str(o) for o in HydraConfig.get().overrides.task]


def interrupted(job, epoch, epochs) -> signals.Interrupted:
    """The error of a job stopped by a signal in `epoch`, saying how to resume it."""
    run_dir = job.run_dir
    if job.saved_epoch:
        how = f"resume with: {command()} {shlex.quote(f'trainer.resume={run_dir}')}"
        if sweep := _sweep_dir():
            how += (f" (the whole sweep: {command()} -m "
                    f"{shlex.quote(f'sweep.resume={sweep}')})")  # fmt: skip
    elif epoch > 1:  # trainer.checkpoint_every > 1: logged, but no last.pt yet
        how = f"epochs 1-{epoch - 1} are logged in {run_dir}; no last.pt yet, nothing to resume"
    else:
        how = "no epoch had finished, nothing to resume"
    exc = signals.Interrupted(signals.pending(), f"interrupted at epoch {epoch}/{epochs}; {how}")
    exc.kept = epoch > 1  # an epoch finished: its folder (event file, log) stays
    return exc


class Job:
    """stack=(M, state_of) for one of M jobs trained as a stack (sweeps/stacking.py): state_of()
    gives its (model, optimizer) state from the stack, its `model` is a copy that is loaded
    from there to be drawn, and it logs nothing (its own Hydra job logs its lines, run.py).
    `overrides`: the job's Hydra overrides ("hydra": those of the Hydra job this process
    runs; None: not known), kept in last.pt: a resumed sweep composes the job again from them
    (sweeps/resume.py), not from Hydra's .hydra/ files, which a kill may leave half-written."""

    def __init__(self, cfg, run_dir, model, generator, device: str, state=None, stack=None,
                 overrides="hydra"):  # fmt: skip
        self.cfg, self.run_dir, self.model, self.generator = cfg, run_dir, model, generator
        self.device = device
        self.stack = stack
        self.overrides = _job_overrides() if overrides == "hydra" else overrides
        self.resolved = saved_config(cfg)
        self.history: list[dict] = []  # the metrics of every finished epoch
        self.saved_epoch = 0  # the epoch last.pt holds
        self.seconds = 0.0  # training time of the epochs before this process
        self.outcome = None  # the final metrics, or the error that ended the job
        self.writer = None
        self.optimizer, self._state = None, state
        try:
            os.makedirs(run_dir, exist_ok=True)  # Hydra made it; train(cfg, run_dir) may not
        except OSError as exc:
            raise OutputError(f"cannot create the run folder {run_dir} ({exc.strerror})") from None
        if state is not None:
            check_tensors(run_dir, "model", state["model"], model.state_dict())
            model.load_state_dict(state["model"])
            generator.set_state(state["rng"]["batch_order"])  # a CPU tensor on every device
            torch.set_rng_state(state["rng"]["torch"])
            if "cuda" in state["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
            self.history = list(state["history"])
            self.saved_epoch = state["epoch"]
            self.seconds = float(state["seconds"])
        self.resumed_after = self.saved_epoch  # the epoch this process started after

    def restore_optimizer(self, optimizer) -> None:
        """The optimizer this job's last.pt saves; its saved state restored on resume."""
        self.optimizer = optimizer
        if self._state is not None:
            saved = self._state["optimizer"]
            check_tensors(self.run_dir, "optimizer state", saved, optimizer.expected_state())
            optimizer.load_state_dict(saved)
            self._state = None

    def log(self, message: str) -> None:
        if self.stack is None:
            log.info(message)

    def state_of(self) -> tuple[dict, dict]:
        """This job's model and optimizer state: its own, or its part of its stack."""
        if self.stack is not None:
            return self.stack[1]()
        return self.model.state_dict(), self.optimizer.state_dict()

    def open_writer(self) -> None:
        if self.cfg.trainer.tensorboard:
            hparams = {**flatten(self.resolved), "device.used": self.device}  # name may be auto
            from mlrefresh.plots.tensorboard import RunWriter  # TensorBoard: not for a refused run

            self.writer = RunWriter(self.run_dir, OmegaConf.to_yaml(self.resolved), hparams,
                                    resume_after=self.saved_epoch,
                                    layout=_sweep_dir() is None)  # fmt: skip

    def close_writer(self, success: bool) -> None:
        if self.writer:
            self.writer.close(success)
            self.writer = None

    @contextlib.contextmanager
    def own_files(self):
        """A file of this job's that cannot be written (OutputError) ends this job, not the
        others of its stack; the error is its outcome."""
        try:
            yield
        except UserError as exc:
            self._fail(exc)

    def _fail(self, exc: UserError) -> None:
        exc.kept = True  # the run did work: its folder stays (the event file, the log)
        self.outcome = exc
        self.close_writer(False)

    def diverged(self, values: dict, epoch: int) -> bool:
        """Ends the job with a DivergedError if its loss is not finite."""
        bad = [v for v in (values["loss/train"], values["loss/val"]) if not math.isfinite(v)]
        if not bad:
            return False
        self._fail(DivergedError(_diverged(bad[0], epoch, self.cfg, self.run_dir)))
        return True

    def epoch_done(self, epoch, values, data, z_val, seconds) -> None:
        """After an epoch: history, event file (pictures of this job's model), last.pt."""
        trainer = self.cfg.trainer
        self.history.append(values)
        if self.writer:
            self.writer.scalars(epoch, values)
            if trainer.images:
                at = epoch in (1, trainer.epochs) or epoch % trainer.image_every == 0
                if at and self.stack is not None:  # the job's weights live in its stack
                    self.model.load_state_dict(self.state_of()[0])
                self.writer.pictures(epoch, self.model, data, z_val, image=at)
        if epoch % trainer.checkpoint_every == 0 or epoch == trainer.epochs:
            if self.writer:
                self.writer.flush()  # the epochs last.pt holds are on disk in the event file
            model, optimizer = self.state_of()
            extra = {"stack": self.stack[0], "stack_from": self.resumed_after} if self.stack else {}
            if self.overrides is not None:
                extra["overrides"] = self.overrides
            save_last(self.run_dir, epoch=epoch, model=model, optimizer=optimizer,
                      generator=self.generator, history=self.history, config=self.resolved,
                      seconds=self.seconds + seconds, **extra)  # fmt: skip
            self.saved_epoch = epoch

    def save(self, device, seconds) -> dict:
        """model.pt and metrics.json after the last epoch; the final metrics."""
        seconds += self.seconds
        result = {
            **self.history[-1],
            "epochs": self.cfg.trainer.epochs,
            "train_seconds": round(seconds, 3),
            "device": str(device),  # what `device=auto` turned out to be
        }
        for key in ("nll/val", "kl/val", "entropy/val"):
            result.setdefault(key, None)
        weights = to_cpu(self.state_of()[0])  # loadable without a GPU
        shape = {"num_features": self.model.num_features, "num_classes": self.model.num_classes}
        save_torch(os.path.join(self.run_dir, "model.pt"),
                   {"state_dict": weights, "config": self.resolved, "metrics": result,
                    "shape": shape})  # fmt: skip
        save_json(os.path.join(self.run_dir, "metrics.json"), result)
        accuracy = 100 * result["accuracy/val"]
        self.log(f"val accuracy {accuracy:.2f}% after {seconds:.2f} s in {self.run_dir}")
        return result
