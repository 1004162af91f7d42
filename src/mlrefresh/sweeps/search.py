"""The parts of configs/hparams_search/optuna.yaml's search space that depend on another choice.

Optuna's Hydra sweeper calls `custom_search_space(cfg, trial)` after sampling `params`; a value
suggested here becomes one more override of the trial. SGD has a momentum, Adam does not
(`optim.momentum` would be refused as an unknown key under optim=adam). The optimizer is the
trial's sampled one, or the one fixed on the command line (`optim=adam`, a user attribute of
the trial), or the config's.

Example:
    >>> import optuna
    >>> from omegaconf import OmegaConf
    >>> cfg = OmegaConf.create({"optim": {"name": "sgd"}})
    >>> study = optuna.create_study()
    >>> trial = study.ask({"optim": optuna.distributions.CategoricalDistribution(["sgd"])})
    >>> momentum(cfg, trial)
    >>> 0.0 <= trial.params["optim.momentum"] <= 0.99
    True
    >>> fixed = study.ask()
    >>> fixed.set_user_attr("optim", "adam")  # python scripts/train.py -m ... optim=adam
    >>> momentum(cfg, fixed)
    >>> "optim.momentum" in fixed.params
    False
"""

__all__ = ["momentum"]


def momentum(cfg, trial) -> None:
    """SGD trials sample optim.momentum in [0, 0.99]."""
    default = cfg.optim.name if cfg is not None and "optim" in cfg else "sgd"
    optimizer = trial.params.get("optim", trial.user_attrs.get("optim", default))
    if optimizer == "sgd":
        trial.suggest_float("optim.momentum", 0.0, 0.99)
