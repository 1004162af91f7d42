"""A sweep's launcher and sweeper settings, checked in one pass before the first job.

Hydra instantiates the launcher and the sweeper only once the sweep has begun, and their
plugins check little: an unknown key (`+hydra.launcher.bogus=1`) is accepted silently or ends
in "Error in call to target", and a value such as joblib's `prefer=bogus`, submitit's
`timeout_min=-1`, Optuna's `direction=sideways` or an interval with low > high ends in a
traceback, or (Optuna's `n_trials=0`) in an error and exit code 0. Here each launcher's keys are
the fields of its plugin's own config class; values are checked against what the plugin accepts.

Example:
    >>> check_sweeper({"_target_": "x.OptunaSearch", "direction": "sideways", "n_trials": 3})
    Traceback (most recent call last):
    ...
    mlrefresh.errors.ConfigError: hydra.sweeper.direction=sideways must be minimize or maximize...
"""

import dataclasses
import importlib
import numbers

from mlrefresh.errors import ConfigError

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


def _check_params(lines: list[str]) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    for line in lines:
        try:
            override = parser.parse_overrides([line])[0]
        except HydraException:
            raise ConfigError(
                f"the search space {line} cannot be parsed; e.g. interval(0.001, 1.0), "
                "tag(log, interval(0.001, 1.0)) or choice(sgd, adam)"
            ) from None
        key, value = override.key_or_group, override.value()
        if isinstance(value, IntervalSweep):
            low, high = value.start, value.end
            if not low < high:
                raise ConfigError(
                    f"the search space of {key}: interval({low}, {high}) is empty; give the "
                    "low end first, e.g. interval(0.001, 1.0)"
                )
            if "log" in value.tags and low <= 0:
                raise ConfigError(
                    f"the search space of {key}: a log interval must be above 0, not from "
                    f"{low}; e.g. tag(log, interval(0.0001, 1.0))"
                )


def check_sweeper(sweeper: dict, overrides=()) -> None:
    """ConfigError for Optuna settings the study cannot run with (other sweepers: unchecked):
    hydra.sweeper's own keys, and the search space in its params and on the command line."""
    if not str(sweeper.get("_target_", "")).endswith(("OptunaSearch", "OptunaSweeper")):
        return
    directions = sweeper.get("direction")
    for d in directions if isinstance(directions, list) else [directions]:
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
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    _check_params([*params, *overrides])
    _check_storage(sweeper.get("storage"))


DEFAULT_OBJECTIVE = "nll/val"  # what a study optimises unless hydra.sweeper.objective says
OBJECTIVES = {"nll/val": "minimize", "loss/val": "minimize", "kl/val": "minimize",
              "accuracy/val": "maximize", "loss/train": "minimize"}  # fmt: skip


def _check_objective(sweeper: dict, direction) -> None:
    """hydra.sweeper.objective (OptunaSearch's) is a final metric, studied in its direction."""
    if "objective" not in sweeper:
        return  # the plugin's own sweeper: it optimises what run_job returns, nll/val
    objective = sweeper["objective"]
    if objective not in OBJECTIVES:
        raise ConfigError(
            f"hydra.sweeper.objective={objective} must be one of {', '.join(OBJECTIVES)}, "
            "e.g. hydra.sweeper.objective=nll/val"
        )
    if direction != OBJECTIVES[objective]:
        raise ConfigError(
            f"hydra.sweeper.objective={objective} is studied with "
            f"hydra.sweeper.direction={OBJECTIVES[objective]}, not {direction}"
        )


def _check_storage(url) -> None:
    """The study's database (sweeps/study.py) can be opened: one line, not SQLAlchemy's
    traceback once the sweep has begun."""
    if url is None:
        return
    try:
        import sqlalchemy

        sqlalchemy.create_engine(str(url)).connect().close()
    except Exception as exc:  # noqa: BLE001 (a bad URL, a missing driver, no such folder)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"hydra.sweeper.storage={url} cannot be opened ({first}); give an "
            "SQLAlchemy URL, e.g. sqlite:///study.db, or null (in memory)"
        ) from None
