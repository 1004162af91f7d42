"""A sweep's launcher and sweeper settings, checked in one pass before the first job.

Hydra instantiates the launcher and the sweeper only once the sweep has begun, and their
plugins check little: an unknown key (`+hydra.launcher.bogus=1`) is accepted silently or ends
in "Error in call to target", and a value such as joblib's `prefer=bogus`, submitit's
`timeout_min=-1` ends in a traceback. Here each launcher's keys are the fields of its plugin's
own config class; values are checked against what the plugin accepts. An Optuna study's
settings (hydra/sweeper=optuna_study: direction, n_trials, the sampler and its arguments, every
search-space key, custom_search_space, storage) are checked before the study is created.

Example:
    >>> check_sweeper({"_target_": "x.OptunaSearch", "direction": "sideways", "n_trials": 3})
    Traceback (most recent call last):
    ...
    mlrefresh.errors.ConfigError: hydra.sweeper.direction=sideways must be minimize or maximize...
"""

import dataclasses
import importlib
import numbers
import os

from mlrefresh.errors import ConfigError
from mlrefresh.runs.console import command

__all__ = ["check_launcher_keys", "check_sweeper"]

_CONF = {  # a launcher's kind (launchers.launcher_kind) -> its plugin's config class
    "joblib": "hydra_plugins.hydra_joblib_launcher.config.JobLibLauncherConf",
    "submitit": "hydra_plugins.hydra_submitit_launcher.config.LocalQueueConf",
    "slurm": "hydra_plugins.hydra_submitit_launcher.config.SlurmQueueConf",
}
_CHOICES = {  # joblib passes these on to joblib.Parallel
    "backend": (None, "loky", "threading", "multiprocessing", "sequential"),
    "prefer": (None, "processes", "threads"),
    "require": (None, "sharedmem"),
}
_AT_LEAST = {"timeout_min": 1, "cpus_per_task": 1, "tasks_per_node": 1, "nodes": 1,
             "gpus_per_node": 0, "mem_gb": 0, "max_num_timeout": 0,
             "array_parallelism": 1, "signal_delay_s": 0}  # fmt: skip


def _fields(kind: str) -> list[str] | None:
    if kind == "stacked":
        return ["_target_", "max_models"]
    if kind not in _CONF:
        return None
    module, name = _CONF[kind].rsplit(".", 1)
    try:
        return [f.name for f in dataclasses.fields(getattr(importlib.import_module(module), name))]
    except (ImportError, AttributeError):  # another version of the plugin: its own checks
        return None


def _number(key: str, value, low, whole=True, none=True) -> None:
    if value is None and none:
        return
    kind = numbers.Integral if whole else numbers.Real
    if not isinstance(value, kind) or isinstance(value, bool) or value < low:
        what = "a whole number" if whole else "a number"
        raise ConfigError(f"{key}={value} must be {what} from {low}, or null where it may be")


def check_launcher_keys(kind: str, launcher: dict) -> None:
    """ConfigError for a key the launcher does not have, or a value it cannot use."""
    known = _fields(kind)
    if known is not None:
        unknown = sorted(set(launcher) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown key hydra.launcher.{unknown[0]}; the {kind} launcher has only "
                f"{', '.join(k for k in known if k != '_target_')}"
            )
    for key, allowed in _CHOICES.items():
        if kind == "joblib" and launcher.get(key) not in allowed:
            raise ConfigError(
                f"hydra.launcher.{key}={launcher.get(key)} must be one of "
                f"{', '.join(str(a).lower() if a is None else a for a in allowed)}"
            )
    if kind in ("submitit", "slurm"):
        for key, low in _AT_LEAST.items():
            if key in launcher:
                _number(f"hydra.launcher.{key}", launcher[key], low, whole=key != "mem_gb")


def check_sweeper(sweeper: dict, overrides=(), config=None) -> None:
    """ConfigError for Optuna settings the study cannot run with (other sweepers: unchecked):
    hydra.sweeper's own keys, its sampler, the search space in its params and on the command
    line (each key one of the config's, when `config`, the sweep's, is given), its
    custom_search_space and its storage: all before the study is created."""
    if not str(sweeper.get("_target_", "")).endswith("OptunaSearch"):
        return
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError(
            "hparams_search=optuna needs Optuna, which is not installed; run "
            'pip install -e ".[sweep]" (or make train)'
        ) from None
    from mlrefresh.sweeps.space import study_space
    from mlrefresh.sweeps.study import make_sampler

    directions = sweeper.get("direction")
    directions = directions if isinstance(directions, list) else [directions]
    for d in directions:
        if d not in ("minimize", "maximize"):
            raise ConfigError(
                f"hydra.sweeper.direction={d} must be minimize or maximize, e.g. "
                "hydra.sweeper.direction=maximize"
            )
    for key in ("n_trials", "n_jobs"):
        _number(f"hydra.sweeper.{key}", sweeper.get(key), 1, none=False)
    rate = sweeper.get("max_failure_rate", 0.0)
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate <= 1:
        raise ConfigError(f"hydra.sweeper.max_failure_rate={rate} must be a number from 0 to 1")
    _check_objective(sweeper, directions)
    sampler = sweeper.get("sampler") or {}
    space, fixed, _ = study_space(sweeper.get("params"), overrides, sampler, sweeper["n_trials"])
    if config is not None:
        for key in [*space, *fixed]:
            _check_key(config, key)
    try:
        make_sampler(sampler, space)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 (Optuna's or instantiate's refusal, in one line)
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"hydra.sweeper.sampler ({sampler.get('_target_')}) cannot be made: {first}; see "
            "the sampler's arguments in Optuna's documentation"
        ) from None
    _check_custom(sweeper.get("custom_search_space"))
    if sampler.get("_target_") == "optuna.samplers.GridSampler" and sweeper.get(
        "custom_search_space"
    ):
        raise ConfigError(
            "the grid sampler walks the grid of the search space alone; custom_search_space "
            f"({sweeper['custom_search_space']}) adds keys off the grid: add "
            "hydra.sweeper.custom_search_space=null"
        )
    _check_storage(sweeper.get("storage"))


def _check_key(config, key: str) -> None:
    """A search-space key is a config group of the sweep's config or one of its keys (`+key`:
    a new one, `~key`: one to delete)."""
    from omegaconf import OmegaConf

    bare = key.lstrip("+~")
    if key.startswith("+") or bare in (OmegaConf.select(config, "hydra.runtime.choices") or {}):
        return
    if OmegaConf.select(config, bare, default=_ABSENT, throw_on_missing=False) is _ABSENT:
        raise ConfigError(
            f"unknown key {bare} in the search space (hydra.sweeper.params or the command line); "
            f"check the spelling ({command()} --cfg job lists every key)"
        )


_ABSENT = object()


def _check_custom(path) -> None:
    if not path:
        return
    from hydra.utils import get_method

    try:
        get_method(path)
    except Exception:  # noqa: BLE001 (no such module or function)
        raise ConfigError(
            f"hydra.sweeper.custom_search_space={path} is not a function that can be imported; "
            "give module.function, e.g. mlrefresh.sweeps.search.momentum"
        ) from None


DEFAULT_OBJECTIVE = "nll/val"  # what a study optimises unless hydra.sweeper.objective says
OBJECTIVES = {"nll/val": "minimize", "loss/val": "minimize", "kl/val": "minimize",
              "accuracy/val": "maximize", "loss/train": "minimize"}  # fmt: skip


def _check_objective(sweeper: dict, direction) -> None:
    """hydra.sweeper.objective (OptunaSearch's) is a final metric, studied in its direction."""
    objective = sweeper.get("objective", DEFAULT_OBJECTIVE)
    if objective not in OBJECTIVES:
        raise ConfigError(
            f"hydra.sweeper.objective={objective} must be one of {', '.join(OBJECTIVES)}, "
            "e.g. hydra.sweeper.objective=nll/val"
        )
    if direction != [OBJECTIVES[objective]]:
        wrong = direction[0] if len(direction) == 1 else direction
        raise ConfigError(
            f"hydra.sweeper.objective={objective} is studied with "
            f"hydra.sweeper.direction={OBJECTIVES[objective]}, not {wrong}"
        )


def _check_storage(url) -> None:
    """The study's storage (sweeps/study.py) can be opened: one line, not SQLAlchemy's
    traceback once the sweep has begun."""
    from mlrefresh.sweeps.study import JOURNAL

    if url is None:
        return
    if str(url).startswith(JOURNAL):
        folder = os.path.dirname(os.path.abspath(str(url).removeprefix(JOURNAL)))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise ConfigError(
                f"hydra.sweeper.storage={url}: the folder {folder} does not exist or cannot be "
                "written; give a file in a folder there is, e.g. journal:/shared/study.log"
            )
        return
    try:
        import sqlalchemy

        sqlalchemy.create_engine(str(url)).connect().close()
    except Exception as exc:  # noqa: BLE001 (a bad URL, a missing driver, no such folder)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"hydra.sweeper.storage={url} cannot be opened ({first}); give an "
            "SQLAlchemy URL, e.g. sqlite:///study.db, journal:<file>, or null (in memory)"
        ) from None
