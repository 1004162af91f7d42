"""train(cfg): build data, model, loss and optimizer from a config, train, log, save.

Epochs of shuffled mini-batches over tensors already on the device. The step loop keeps the
logits it computed (and the gradient norms) on the device and never waits for it: no .item(),
no host sync. At the end of the epoch all metrics are computed from those logits, as seen
during the epoch's steps, and from one pass over the validation set, then read in one sync.
After each epoch: the log line, the event file, and last.pt (checkpoint.save_last), so that
Ctrl-C or SIGTERM (honoured at the next step boundary) loses at most the current epoch and
`trainer.resume=<run dir>` continues exactly (resume.py).

Example (the same as `python scripts/train.py trainer.epochs=3`, run from Python):
    >>> from hydra import compose, initialize_config_dir
    >>> with initialize_config_dir("/abs/path/configs", version_base="1.3"):  # doctest: +SKIP
    ...     cfg = compose("train", overrides=["trainer.epochs=3"])
    >>> train(cfg, run_dir="/tmp/run")["accuracy/val"]  # doctest: +SKIP
    0.994
"""

import json
import logging
import math
import os
import shlex
import sys
import time

import torch
from omegaconf import OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from mlrefresh import signals
from mlrefresh.checkpoint import save_json, save_last, save_torch, to_cpu
from mlrefresh.checks import flatten
from mlrefresh.data import load_dataset
from mlrefresh.diagnostics import gradient_diagnostics, likelihood_diagnostics
from mlrefresh.errors import DivergedError, OutputError, UserError
from mlrefresh.models import build_model, wrong_start
from mlrefresh.objective import Objective
from mlrefresh.optim import build_optimizer
from mlrefresh.resume import command_line_keys, resume_config
from mlrefresh.tensorboard import RunWriter
from mlrefresh.validate import refuse_bad_config

__all__ = ["train"]

log = logging.getLogger(__name__)


def _run_dir(run_dir):
    if run_dir is not None:
        return str(run_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return HydraConfig.get().runtime.output_dir
    raise ValueError("train(cfg) outside a Hydra app needs run_dir=<folder for the run's files>")


def _train_epoch(model, objective, optimizer, schedule, x, t, batch_size, generator, step0):
    """One shuffled pass over (x, t). Returns what the epoch's metrics are computed from: the
    logits of every step (detached), the targets in the same order, and per-step gradient
    norms. Nothing here waits for the device: no .item(), no metric kernels but one norm.
    Keeping the logits costs N x K floats per epoch (2.4 MB for MNIST)."""
    n = x.shape[0]
    perm = torch.randperm(n, device=x.device, generator=generator)
    params = list(model.parameters())
    logits, grad_norms = [], []
    for step, idx in enumerate(perm.split(min(batch_size, n))):
        if signals.pending() is not None:  # Ctrl-C or SIGTERM: stop at this step boundary
            return None
        z = model(x[idx])
        loss = objective.loss(z, t[idx])
        optimizer.zero_grad()
        loss.backward()
        logits.append(z.detach())
        grad_norms.append(torch._foreach_norm([p.grad for p in params]))  # one kernel launch
        schedule(step0 + step)
        optimizer.step()
    return torch.cat(logits), t[perm], grad_norms


@torch.no_grad()
def _epoch_metrics(objective, z_train, t_train, grad_norms, model, x_val, t_val, p_val):
    """Every metric of the epoch as 0-dim device tensors (read by the caller in one sync).
    p_val: the true p(y|x) of the validation inputs (generated data), or None."""
    z_val = model(x_val)
    metrics = {}
    for split, z, t in (("train", z_train, t_train), ("val", z_val, t_val)):
        metrics[f"loss/{split}"] = objective.loss(z, t)
        metrics[f"accuracy/{split}"] = objective.correct(z, t) / len(t)
        if objective.has_nll:
            metrics[f"nll/{split}"] = objective.nll(z, t)
    per_step = torch.stack([g for norms in grad_norms for g in norms]).view(len(grad_norms), -1)
    metrics["grad_norm"] = per_step.square().sum(1).sqrt().mean()  # mean over steps of |grad|
    metrics.update(gradient_diagnostics(objective, z_train, t_train))
    if p_val is not None and objective.has_nll:
        metrics.update(likelihood_diagnostics(objective, z_val, p_val))
    return metrics, z_val


def _log_epoch(epoch, epochs, m):
    line = f"epoch {epoch}/{epochs}  loss {m['loss/train']:.4f}/{m['loss/val']:.4f}"
    line += f"  acc {m['accuracy/train']:.2%}/{m['accuracy/val']:.2%}"
    if "nll/val" in m:
        line += f"  nll {m['nll/train']:.4f}/{m['nll/val']:.4f}"
    line += f" (train/val)  |grad| {m['grad_norm']:.3g}  |dL/dz| {m['diag/dz_abs']:.3g}"
    line += f"  stalled {m['diag/stalled']:.0%}"
    if "kl/val" in m:
        line += f"  kl/val {m['kl/val']:.4f}"
    log.info(line)


def _diverged(value, epoch, cfg, run_dir) -> str:
    todo = f"lower optim.lr (now {cfg.optim.lr})"
    if cfg.model.init != "zeros":
        todo += f" or model.init_scale (now {cfg.model.init_scale})"
    done = epoch - 1
    kept = f"epoch{'s 1-' if done > 1 else ' '}{done} logged in {run_dir}" if done else ""
    kept = kept or "no epoch finished before it"
    return f"the loss became {value} in epoch {epoch}: training diverged; {todo}. {kept}"


def _interrupted(epoch, epochs, run_dir, saved_epoch) -> signals.Interrupted:
    if saved_epoch:
        how = f"resume with: python scripts/train.py {shlex.quote(f'trainer.resume={run_dir}')}"
    elif epoch > 1:  # trainer.checkpoint_every > 1: logged, but no last.pt yet
        how = f"epochs 1-{epoch - 1} are logged in {run_dir}; no last.pt yet, nothing to resume"
    else:
        how = "no epoch had finished, nothing to resume"
    exc = signals.Interrupted(signals.pending(), f"interrupted at epoch {epoch}/{epochs}; {how}")
    exc.kept = epoch > 1  # an epoch finished: its folder (event file, log) stays
    return exc


class _Run:
    """What the epoch loop works on, and what last.pt saves of it."""

    def __init__(self, model, objective, optimizer, schedule, generator, cfg, run_dir, resolved):
        self.model, self.objective, self.optimizer = model, objective, optimizer
        self.schedule, self.generator = schedule, generator
        self.cfg, self.run_dir, self.resolved = cfg, run_dir, resolved
        self.history: list[dict] = []  # the metrics of every finished epoch
        self.saved_epoch = 0  # the epoch last.pt holds
        self.seconds = 0.0  # training time of the epochs before this process

    def restore(self, state) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["rng"]["batch_order"])  # a CPU tensor on every device
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.history = list(state["history"])
        self.saved_epoch = state["epoch"]
        self.seconds = float(state["seconds"])

    def checkpoint(self, epoch, seconds) -> None:
        save_last(self.run_dir, epoch=epoch, model=self.model, optimizer=self.optimizer,
                  generator=self.generator, history=self.history, config=self.resolved,
                  seconds=seconds)  # fmt: skip
        self.saved_epoch = epoch


def _fit(run: _Run, data, writer):
    """The epochs after the saved ones: train, measure, check for divergence, log, checkpoint.
    Returns the last epoch's metrics."""
    cfg, run_dir = run.cfg, run.run_dir
    t_train, t_val = run.objective.targets(data.y_train), run.objective.targets(data.y_val)
    p_val = data.posterior(data.x_val) if data.posterior is not None else None
    epochs, batch_size = cfg.trainer.epochs, cfg.trainer.batch_size
    every = cfg.trainer.get("checkpoint_every", 1)
    images = cfg.trainer.get("images", True)
    steps_per_epoch = math.ceil(len(data.x_train) / batch_size)
    start, first = time.perf_counter(), run.saved_epoch + 1
    show = sys.stdout.isatty()
    with logging_redirect_tqdm():
        for epoch in tqdm(range(first, epochs + 1), desc="epochs", disable=not show):
            step0 = (epoch - 1) * steps_per_epoch
            seen = _train_epoch(run.model, run.objective, run.optimizer, run.schedule,
                                data.x_train, t_train, batch_size, run.generator,
                                step0)  # fmt: skip
            if seen is None:
                raise _interrupted(epoch, epochs, run_dir, run.saved_epoch)
            m, z_val = _epoch_metrics(run.objective, *seen, run.model, data.x_val, t_val, p_val)
            values = dict(zip(m, torch.stack(list(m.values())).tolist()))  # the one host sync
            bad = [v for v in (values["loss/train"], values["loss/val"]) if not math.isfinite(v)]
            if bad:
                raise DivergedError(_diverged(bad[0], epoch, cfg, run_dir))
            _log_epoch(epoch, epochs, values)
            run.history.append(values)
            if writer:
                writer.scalars(epoch, values)
                if images:
                    at = epoch in (1, epochs) or epoch % cfg.trainer.get("image_every", 10) == 0
                    writer.pictures(epoch, run.model, data, z_val, image=at)
            if epoch % every == 0 or epoch == epochs:
                run.checkpoint(epoch, run.seconds + time.perf_counter() - start)
    return run.history[-1], run.seconds + time.perf_counter() - start


def _train_and_save(run: _Run, data, writer):
    """The epochs, then model.pt and metrics.json; a signal meanwhile waits for a safe point."""
    with signals.deferred():  # a signal stops the loop at a step boundary, or waits for a save
        success = False
        try:
            values, seconds = _fit(run, data, writer)
            success = True
        finally:
            if writer:
                writer.close(success)
        result = {
            **values,
            "epochs": run.cfg.trainer.epochs,
            "train_seconds": round(seconds, 3),
            "device": str(data.x_train.device),  # what `device=auto` turned out to be
        }
        for key in ("nll/val", "kl/val", "entropy/val"):
            result.setdefault(key, None)
        weights = to_cpu(run.model.state_dict())  # loadable without a GPU
        save_torch(os.path.join(run.run_dir, "model.pt"),
                   {"state_dict": weights, "config": run.resolved, "metrics": result})  # fmt: skip
        save_json(os.path.join(run.run_dir, "metrics.json"), result)
    return result, seconds


def _finished(run_dir, state, epochs):
    path = os.path.join(run_dir, "metrics.json")
    if state["epoch"] < epochs or not os.path.exists(path):
        return None
    with open(path) as f:
        result = json.load(f)
    log.info("%s finished all %d epochs already; nothing to do (trainer.epochs=N extends it)",
             run_dir, epochs)  # fmt: skip
    return result


def train(cfg, run_dir=None) -> dict:
    """Train the configured model; returns the final metrics (also in run_dir/metrics.json).
    With trainer.resume=<run dir>, continue that run in its folder (see resume.py)."""
    state = None
    if cfg.trainer.get("resume"):
        cfg, state = resume_config(cfg, command_line_keys())
        run_dir = cfg.trainer.resume
    run_dir = _run_dir(run_dir)
    device, data_name, data_options = refuse_bad_config(cfg)
    if state is not None and (done := _finished(run_dir, state, cfg.trainer.epochs)):
        return done

    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    try:
        data = load_dataset(data_name, device=device, cache=True, **data_options)
    except signals.Interrupted as exc:
        raise signals.Interrupted(
            exc.signum, f"{exc} while loading the data; nothing saved"
        ) from None
    log.info("%s on %s", data.description, device)
    m = cfg.model
    model = build_model(m.name, data.num_features, data.num_classes, m.init, m.init_scale,
                        m.get("hidden", 16), m.get("activation", "tanh")).to(device)  # fmt: skip
    if m.init == "wrong":
        wrong_start(model, data.x_train, data.y_train, m.init_scale)
    objective = Objective(cfg.loss.name, model)
    total_steps = cfg.trainer.epochs * math.ceil(len(data.x_train) / cfg.trainer.batch_size)
    optimizer, schedule = build_optimizer(cfg.optim, model.parameters(), total_steps)

    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)
    resolved["trainer"]["resume"] = None  # the config the run was started with
    try:
        os.makedirs(run_dir, exist_ok=True)  # Hydra made it already; train(cfg, run_dir) may not
    except OSError as exc:
        raise OutputError(f"cannot create the run folder {run_dir} ({exc.strerror})") from None
    run = _Run(model, objective, optimizer, schedule, generator, cfg, run_dir, resolved)
    if state is not None:
        run.restore(state)
        log.info("resuming %s after epoch %d/%d", run_dir, run.saved_epoch, cfg.trainer.epochs)
    writer = None
    if cfg.trainer.get("tensorboard", True):
        hparams = {**flatten(resolved), "device.used": str(device)}  # device.name may be auto
        writer = RunWriter(run_dir, OmegaConf.to_yaml(resolved), hparams,
                           resume_after=run.saved_epoch)  # fmt: skip
    try:
        result, seconds = _train_and_save(run, data, writer)
    except UserError as exc:
        exc.kept = True  # the run did work: its folder stays (the event file, the log)
        raise
    if signals.pending() is not None:
        exc = signals.Interrupted(signals.pending(), f"interrupted after the last epoch; the "
                                  f"results are saved in {run_dir}")  # fmt: skip
        exc.kept = True
        raise exc
    accuracy = 100 * result["accuracy/val"]
    log.info("val accuracy %.2f%% after %.2f s in %s", accuracy, seconds, run_dir)
    return result
