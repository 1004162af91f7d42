"""The whole config, checked before any work: every group's keys and values, the model/loss
pair, the device, and whether a one-output model meets more than two classes.

Each group's own checker does its part (objective.check_pair, models.check_model,
optim.check_optim, data.check_options, device.resolve_device); this file adds the top level and
the trainer group, and runs them all in the order a user would fix them.

Example:
    >>> from omegaconf import OmegaConf
    >>> from mlrefresh.validate import check_trainer
    >>> check_trainer(OmegaConf.create({"epochs": 0, "batch_size": 64}))
    Traceback (most recent call last):
    ...
    mlrefresh.errors.ConfigError: trainer.epochs=0 must be a whole number from 1 to 1000000, ...
"""

from collections.abc import Mapping

from omegaconf import OmegaConf

from mlrefresh import checks
from mlrefresh.data import expected_num_classes
from mlrefresh.device import resolve_device
from mlrefresh.errors import ConfigError
from mlrefresh.models import check_model, model_keys, model_options, output_unit
from mlrefresh.objective import check_pair
from mlrefresh.optim import check_optim

__all__ = ["TOP_KEYS", "TRAINER_KEYS", "check_trainer", "refuse_bad_config"]

TOP_KEYS = ("seed", "model", "loss", "trainer", "dataset", "device", "optim")
TRAINER_KEYS = ("epochs", "batch_size", "tensorboard", "images", "image_every",
                "checkpoint_every", "cuda_graph", "resume")  # fmt: skip


def check_trainer(trainer) -> None:
    checks.known_keys("trainer", trainer, TRAINER_KEYS)
    checks.whole("trainer.epochs", trainer.get("epochs"), low=1, high=10**6, example=20)
    checks.whole("trainer.batch_size", trainer.get("batch_size"), low=1, example=64)
    checks.flag("trainer.tensorboard", trainer.get("tensorboard", True))
    checks.flag("trainer.images", trainer.get("images", True))
    checks.flag("trainer.cuda_graph", trainer.get("cuda_graph", True))
    checks.whole(
        "trainer.image_every", trainer.get("image_every", 10), low=1, high=10**6, example=5
    )
    every = trainer.get("checkpoint_every", 1)
    checks.whole("trainer.checkpoint_every", every, low=1, high=10**6, example=1)
    resume = trainer.get("resume")
    if resume is not None and (not isinstance(resume, str) or not resume):
        raise ConfigError(f"trainer.resume={resume!r} must be a run folder, or null")


def refuse_bad_config(cfg):
    """Everything that can be checked before any work. Returns the device and the data set's
    name and options."""
    checks.known_keys("", cfg, TOP_KEYS)
    for group in TOP_KEYS[1:]:
        if not isinstance(cfg.get(group), Mapping):
            raise ConfigError(f"the config has no {group} group; choose one, e.g. {group}=...")
    output_unit(cfg.model.get("name"))
    for group, keys in (("loss", ("name",)), ("device", ("name",))):
        checks.known_keys(group, cfg[group], keys)
    checks.known_keys("model", cfg.model, model_keys(cfg.model.name))
    check_trainer(cfg.trainer)
    checks.whole("seed", cfg.get("seed"), low=0, high=checks.MAX_SEED, example=0)
    model_name = cfg.model.name
    check_pair(cfg.loss.name, model_name, output_unit(model_name))
    check_optim(cfg.optim)
    device = resolve_device(cfg.device.name)
    data_options = OmegaConf.to_container(cfg.dataset, resolve=True)
    data_name = data_options.pop("name")
    num_classes = expected_num_classes(data_name, data_options)
    check_model(model_name, num_classes, **model_options(cfg.model))
    return device, data_name, data_options
