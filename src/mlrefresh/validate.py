"""The one validation pass: the whole config, checked once, before any work.

Types were enforced by OmegaConf while Hydra composed the config (schema.py); this pass runs
each key's range rule from the same schema, then the rules across groups: the model/loss pair,
the device, and whether a one-output model meets more than two classes. It checks in the
order a user would fix things, and also accepts a plain config (tests, configs saved earlier).

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

from mlrefresh import checks, schema
from mlrefresh.data import expected_num_classes
from mlrefresh.device import resolve_device
from mlrefresh.errors import ConfigError
from mlrefresh.models import check_model, model_keys, model_options, output_unit
from mlrefresh.objective import check_pair
from mlrefresh.optim import check_optim

__all__ = ["check_trainer", "refuse_bad_config"]


def check_trainer(trainer) -> None:
    schema.check_values("trainer", schema.Trainer, trainer)


def refuse_bad_config(cfg):
    """Everything that can be checked before any work. Returns the device and the data set's
    name and options."""
    checks.known_keys("", dict.fromkeys(cfg), ("seed", *schema.GROUPS))
    schema.check_values("", schema.Root, {"seed": cfg.get("seed")})
    for group in schema.GROUPS:
        if OmegaConf.is_missing(cfg, group) or not isinstance(cfg.get(group), Mapping):
            raise ConfigError(f"the config has no {group} group; choose one, e.g. {group}=...")
    output_unit(cfg.model.get("name"))
    schema.check_values("loss", None, cfg.loss, known=("name",))
    schema.check_values("device", None, cfg.device, known=("name",))
    schema.check_values("model", None, cfg.model, known=model_keys(cfg.model.name))
    check_trainer(cfg.trainer)
    model_name = cfg.model.name
    check_pair(cfg.loss.name, model_name, output_unit(model_name))
    check_optim(cfg.optim)
    device = resolve_device(cfg.device.name)
    data_options = OmegaConf.to_container(cfg.dataset, resolve=True)
    data_name = data_options.pop("name")
    num_classes = expected_num_classes(data_name, data_options)
    check_model(model_name, num_classes, **model_options(cfg.model))
    return device, data_name, data_options
