"""The parts of configs/hparams_search/optuna.yaml's search space that depend on another choice.

Optuna's Hydra sweeper calls `custom_search_space(cfg, trial)` after sampling `params`; a value
suggested here becomes one more override of the trial. SGD has a momentum, Adam does not
(`optim.momentum` would be refused as an unknown key under optim=adam).

Example:
    >>> import optuna
    >>> trial = optuna.create_study().ask({"optim": optuna.distributions.CategoricalDistribution(
    ...     ["sgd"])})
    >>> momentum(None, trial)
    >>> 0.0 <= trial.params["optim.momentum"] <= 0.99
    True
"""

__all__ = ["momentum"]


def momentum(cfg, trial) -> None:
    """SGD trials sample optim.momentum in [0, 0.99]."""
    if trial.params.get("optim", "sgd") == "sgd":
        trial.suggest_float("optim.momentum", 0.0, 0.99)
