"""train(cfg): build data, model, loss and optimizer from a config, train, log, save.

Epochs of shuffled mini-batches over tensors already on the device. The step loop keeps the
logits it computed (and the gradient norms) on the device and never waits for it: no .item(),
no host sync. At the end of the epoch all metrics are computed from those logits, as seen
during the epoch's steps, and from one pass over the validation set, then read in one sync.

Example (the same as `python scripts/train.py trainer.epochs=3`, run from Python):
    >>> from hydra import compose, initialize_config_dir
    >>> with initialize_config_dir("/abs/path/configs", version_base="1.3"):  # doctest: +SKIP
    ...     cfg = compose("train", overrides=["trainer.epochs=3"])
    >>> train(cfg, run_dir="/tmp/run")["accuracy/val"]  # doctest: +SKIP
    0.994
"""

import logging
import math
import os
import sys
import time
from collections.abc import Mapping

import torch
from omegaconf import OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from mlrefresh import checks, signals
from mlrefresh.checkpoint import save_json, save_torch
from mlrefresh.data import expected_num_classes, load_dataset
from mlrefresh.device import resolve_device
from mlrefresh.errors import ConfigError, DivergedError, UserError
from mlrefresh.models import MODEL_KEYS, build_model, check_model, output_unit
from mlrefresh.objective import Objective, check_pair
from mlrefresh.optim import build_optimizer, check_optim
from mlrefresh.tensorboard import RunWriter

__all__ = ["train"]

log = logging.getLogger(__name__)


def _run_dir(run_dir):
    if run_dir is not None:
        return str(run_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return HydraConfig.get().runtime.output_dir
    raise ValueError("train(cfg) outside a Hydra app needs run_dir=<folder for the run's files>")


TOP_KEYS = ("seed", "model", "loss", "trainer", "dataset", "device", "optim")
TRAINER_KEYS = ("epochs", "batch_size", "tensorboard")


def _check_top_and_trainer(cfg):
    checks.known_keys("", cfg, TOP_KEYS)
    for group in TOP_KEYS[1:]:
        if not isinstance(cfg.get(group), Mapping):
            raise ConfigError(f"the config has no {group} group; choose one, e.g. {group}=...")
    for group, keys in (("loss", ("name",)), ("device", ("name",)), ("model", MODEL_KEYS)):
        checks.known_keys(group, cfg[group], keys)
    checks.known_keys("trainer", cfg.trainer, TRAINER_KEYS)
    checks.whole("trainer.epochs", cfg.trainer.get("epochs"), low=1, high=10**6, example=20)
    checks.whole("trainer.batch_size", cfg.trainer.get("batch_size"), low=1, example=64)
    checks.flag("trainer.tensorboard", cfg.trainer.get("tensorboard", True))
    checks.whole("seed", cfg.get("seed"), low=0, high=checks.MAX_SEED, example=0)


def _flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


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
def _epoch_metrics(objective, z_train, t_train, grad_norms, model, x_val, t_val):
    """Every metric of the epoch as 0-dim device tensors (read by the caller in one sync)."""
    z_val = model(x_val)
    metrics = {}
    for split, z, t in (("train", z_train, t_train), ("val", z_val, t_val)):
        metrics[f"loss/{split}"] = objective.loss(z, t)
        metrics[f"accuracy/{split}"] = objective.correct(z, t) / len(t)
        if objective.has_nll:
            metrics[f"nll/{split}"] = objective.nll(z, t)
    per_step = torch.stack([g for norms in grad_norms for g in norms]).view(len(grad_norms), -1)
    metrics["grad_norm"] = per_step.square().sum(1).sqrt().mean()  # mean over steps of |grad|
    return metrics


def _log_epoch(epoch, epochs, m):
    line = f"epoch {epoch}/{epochs}  loss {m['loss/train']:.4f}/{m['loss/val']:.4f}"
    line += f"  acc {m['accuracy/train']:.2%}/{m['accuracy/val']:.2%}"
    if "nll/val" in m:
        line += f"  nll {m['nll/train']:.4f}/{m['nll/val']:.4f}"
    log.info(line + f"  |grad| {m['grad_norm']:.3g}  (train/val)")


def _diverged(value, epoch, cfg, run_dir) -> str:
    todo = f"lower optim.lr (now {cfg.optim.lr})"
    if cfg.model.init != "zeros":
        todo += f" or model.init_scale (now {cfg.model.init_scale})"
    done = epoch - 1
    kept = f"epoch{'s 1-' if done > 1 else ' '}{done} logged in {run_dir}" if done else ""
    kept = kept or "no epoch finished before it"
    return f"the loss became {value} in epoch {epoch}: training diverged; {todo}. {kept}"


def _refuse_bad_config(cfg):
    """Check everything that can be checked before any work: the model/loss pair, values, the
    device, and whether a one-output model meets more than two classes. Returns the device and
    the data set's name and options."""
    _check_top_and_trainer(cfg)
    model_name = cfg.model.name
    check_pair(cfg.loss.name, model_name, output_unit(model_name))
    check_optim(cfg.optim)
    device = resolve_device(cfg.device.name)
    data_options = OmegaConf.to_container(cfg.dataset, resolve=True)
    data_name = data_options.pop("name")
    num_classes = expected_num_classes(data_name, data_options)
    check_model(model_name, num_classes, cfg.model.init, cfg.model.init_scale)
    return device, data_name, data_options


def _interrupted(epoch, epochs, run_dir) -> signals.Interrupted:
    signum = signals.pending()
    done = epoch - 1
    kept = f"; epochs 1-{done} are in {run_dir}" if done else "; no epoch had finished"
    exc = signals.Interrupted(signum, f"interrupted at epoch {epoch}/{epochs}{kept}")
    exc.kept = done > 0
    return exc


def _fit(model, objective, optimizer, schedule, data, generator, writer, cfg, run_dir):
    """The epochs: train, measure, check for divergence, log. Returns the last epoch's metrics."""
    t_train, t_val = objective.targets(data.y_train), objective.targets(data.y_val)
    epochs, batch_size = cfg.trainer.epochs, cfg.trainer.batch_size
    steps_per_epoch = math.ceil(len(data.x_train) / batch_size)
    values = {}
    with logging_redirect_tqdm():
        for epoch in tqdm(range(1, epochs + 1), desc="epochs", disable=not sys.stdout.isatty()):
            step0 = (epoch - 1) * steps_per_epoch
            seen = _train_epoch(model, objective, optimizer, schedule, data.x_train, t_train,
                                batch_size, generator, step0)  # fmt: skip
            if seen is None:
                raise _interrupted(epoch, epochs, run_dir)
            m = _epoch_metrics(objective, *seen, model, data.x_val, t_val)
            values = dict(zip(m, torch.stack(list(m.values())).tolist()))  # the one host sync
            bad = [v for v in (values["loss/train"], values["loss/val"]) if not math.isfinite(v)]
            if bad:
                raise DivergedError(_diverged(bad[0], epoch, cfg, run_dir))
            _log_epoch(epoch, epochs, values)
            if writer:
                writer.scalars(epoch, values)
    return values


def _train_and_save(
    model, objective, optimizer, schedule, data, generator, writer, cfg, run_dir, resolved
):
    """The epochs, then model.pt and metrics.json; a signal meanwhile waits for a safe point."""
    with signals.deferred():  # a signal stops the loop at a step boundary, or waits for a save
        success = False
        start = time.perf_counter()
        try:
            values = _fit(model, objective, optimizer, schedule, data, generator, writer, cfg,
                          run_dir)  # fmt: skip
            success = True
        finally:
            if writer:
                writer.close(success)
        seconds = time.perf_counter() - start

        result = {**values, "epochs": cfg.trainer.epochs, "train_seconds": round(seconds, 3)}
        result.setdefault("nll/val", None)
        weights = {k: v.cpu() for k, v in model.state_dict().items()}  # loadable without a GPU
        save_torch(os.path.join(run_dir, "model.pt"),
                   {"state_dict": weights, "config": resolved, "metrics": result})  # fmt: skip
        save_json(os.path.join(run_dir, "metrics.json"), result)
    return result, seconds


def train(cfg, run_dir=None) -> dict:
    """Train the configured model; returns the final metrics (also in run_dir/metrics.json)."""
    run_dir = _run_dir(run_dir)
    device, data_name, data_options = _refuse_bad_config(cfg)

    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    try:
        data = load_dataset(data_name, device=device, **data_options)
    except signals.Interrupted as exc:
        raise signals.Interrupted(
            exc.signum, f"{exc} while loading the data; nothing saved"
        ) from None
    log.info("%s on %s", data.description, device)
    model = build_model(cfg.model.name, data.num_features, data.num_classes, cfg.model.init,
                        cfg.model.init_scale).to(device)  # fmt: skip
    objective = Objective(cfg.loss.name, model)
    total_steps = cfg.trainer.epochs * math.ceil(len(data.x_train) / cfg.trainer.batch_size)
    optimizer, schedule = build_optimizer(cfg.optim, model.parameters(), total_steps)

    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)
    writer = None
    if cfg.trainer.get("tensorboard", True):
        tags = ["loss/train", "loss/val", "accuracy/train", "accuracy/val", "grad_norm"]
        tags += ["nll/train", "nll/val"] if objective.has_nll else []
        writer = RunWriter(run_dir, OmegaConf.to_yaml(resolved), _flatten(resolved), tags)
    try:
        result, seconds = _train_and_save(model, objective, optimizer, schedule, data, generator,
                                          writer, cfg, run_dir, resolved)  # fmt: skip
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
