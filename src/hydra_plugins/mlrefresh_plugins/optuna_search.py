"""hydra/sweeper=optuna_study: an Optuna study as a Hydra sweeper, on Optuna's ask-and-tell API
(configs/hparams_search/optuna.yaml).

Each batch of `n_jobs` trials is asked of the study (the search space: sweeps/space.py, then
`custom_search_space(cfg, trial)`), launched by the configured launcher as one batch of jobs,
and told: the job's objective, `hydra.sweeper.objective` (default `nll/val`, minimised:
accuracy saturates, the likelihood goes on telling runs apart; cli.run_job returns it), or a
failed trial when the job returned no number (a refused or diverged run: its `error:` line is
printed above), logged as `a trial failed (refused or diverged: see its error line)`. Each
trial's job number is its trial number. The study lives in storage (sweeps/study.py:
`<sweep dir>/optuna.db` by default) and the same command again continues it toward `n_trials`;
trials of a dead process are retried. More failures in a batch than `max_failure_rate` allows,
or a study where no trial succeeded, end in one line, `error: ...`, exit code 2. Every setting
and the search space are checked before the study is created (sweeps/settings.check_sweeper).
Optuna's own log lines go to the sweep's log at WARNING (all of them with hydra.verbose=true).

Example:
    python scripts/train.py -m hparams_search=optuna hydra.sweeper.n_trials=10
    python scripts/train.py -m hparams_search=optuna hydra/sweeper/sampler=random
"""

import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import MISSING, OmegaConf

from mlrefresh.runs import session
from mlrefresh.runs.checkpoint import save_json
from mlrefresh.runs.job_folders import RESUMED
from mlrefresh.runs.rundir import JOBS
from mlrefresh.sweeps.settings import DEFAULT_OBJECTIVE
from mlrefresh.sweeps.space import study_space, trial_overrides
from mlrefresh.sweeps.study import (
    ask,
    beating,
    make_sampler,
    open_storage,
    open_study,
    retry_folders,
    tell,
    trials_left,
)

__all__ = ["OptunaSearch", "OptunaSearchConf"]

log = logging.getLogger(__name__)


def _quiet_optuna(verbose) -> None:
    """Optuna's log lines through Python's logging (Hydra's handlers: the sweep's log), not its
    own stderr handler; at WARNING unless hydra.verbose."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    loud = verbose is True or (isinstance(verbose, (list, str)) and "optuna" in str(verbose))
    optuna.logging.set_verbosity(logging.INFO if loud else logging.WARNING)


class OptunaSearch(Sweeper):
    """Hydra's Sweeper contract (setup, then sweep(arguments)) over an Optuna study."""

    def __init__(self, sampler, direction="minimize", storage=None, study_name="mlrefresh",
                 n_trials=20, n_jobs=1, max_failure_rate=1.0, params=None,
                 custom_search_space=None, objective=DEFAULT_OBJECTIVE):  # fmt: skip
        self.sampler_conf, self.direction, self.storage = sampler, direction, storage
        self.study_name, self.n_trials, self.n_jobs = study_name, n_trials, n_jobs
        self.max_failure_rate, self.params = max_failure_rate, params or {}
        self.custom_search_space, self.objective = custom_search_space, objective
        self.config = self.launcher = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def _directions(self) -> list[str]:
        d = self.direction
        return [str(x) for x in d] if OmegaConf.is_list(d) or isinstance(d, list) else [str(d)]

    def sweep(self, arguments: list[str]) -> None:
        from hydra.utils import get_method

        _quiet_optuna(OmegaConf.select(self.config, "hydra.verbose"))
        sweep_dir = os.path.abspath(str(self.config.hydra.sweep.dir))
        space, fixed, n_trials = study_space(self.params, arguments, self.sampler_conf,
                                             self.n_trials)  # fmt: skip
        extend = get_method(self.custom_search_space) if self.custom_search_space else None
        directions = self._directions()
        try:
            storage = open_storage(self.storage)
            study = open_study(storage, self.study_name, directions, sweep_dir)
        except Exception as exc:  # noqa: BLE001 (a damaged or truncated database or journal)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self._stop(f"the study's storage {self.storage} cannot be read ({first}); move the "
                       "damaged file away to start the study anew, or give another "
                       "hydra.sweeper.storage")  # fmt: skip
            return
        # a resumed study's jobs: a retried trial gets its folder back, a new one a new folder
        # (not one by its name: trials may repeat parameters)
        retried, resumed = retry_folders(study, sweep_dir), Path(sweep_dir) / JOBS / RESUMED
        if retried or resumed.exists():
            save_json(resumed, {"folders": [], "jobs": retried})
        done = n_trials - trials_left(study, n_trials)
        made = len(study.get_trials(deepcopy=False))  # a continued study: new random numbers
        study.sampler = sampler = make_sampler(self.sampler_conf, space, made)
        log.info(f"Study name: {study.study_name}")
        log.info(f"Storage: {self.storage or 'in memory'}; {done} of {n_trials} trials taken")
        log.info(f"Sampler: {type(sampler).__name__}")
        log.info(f"Directions: {directions}; objective: {self.objective}")
        while trials := ask(study, space, n_trials, self.n_jobs):
            overrides = []
            for trial in trials:
                trial.set_user_attr("sweep", sweep_dir)  # whose process runs it
                for key, value in fixed.items():  # for custom_search_space (sweeps/search.py)
                    trial.set_user_attr(key, value)
                if extend is not None:
                    extend(self.config, trial)
                overrides.append(trial_overrides(trial.params, fixed))
            with beating(storage, study, trials):
                returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
            failures = self._tell(study, trials, returns)
            if failures / len(returns) > self.max_failure_rate:
                self._stop(f"{failures} of {len(returns)} trials of a batch failed, more than "
                           f"hydra.sweeper.max_failure_rate={self.max_failure_rate} allows; see "
                           "their error lines, or raise it (1.0: the study goes on)")  # fmt: skip
                return
        self._results(study, sweep_dir)

    @staticmethod
    def _tell(study, trials, returns) -> int:
        """Each trial's value (the job's return) or its failure; the number of failures."""
        failures = 0
        for trial, ret in zip(trials, returns):
            value = ret.return_value if ret.status.name == "COMPLETED" else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                tell(study, trial, float(value))
            else:
                tell(study, trial, None)
                log.warning("a trial failed (refused or diverged: see its error line)")
                failures += 1
        return failures

    @staticmethod
    def _stop(why: str) -> None:
        print(f"error: {why}", file=sys.stderr, flush=True)
        session.current().codes.append(2)

    def _results(self, study, sweep_dir) -> None:
        """optimization_results.yaml (best parameters and value); a study with no success
        ends in one line."""
        from optuna.trial import TrialState

        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
            self._stop(f"no trial of the study succeeded ({failed} failed); see their error "
                       "lines, then fix or narrow the search (hydra.sweeper.params)")  # fmt: skip
            return
        best = study.best_trial
        log.info(f"Best parameters: {best.params}")
        log.info(f"Best value: {best.value}")
        results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
        OmegaConf.save(OmegaConf.create(results), f"{sweep_dir}/optimization_results.yaml")


@dataclasses.dataclass
class OptunaSearchConf:
    """hydra/sweeper=optuna_study's settings (configs/hparams_search/optuna.yaml sets them)."""

    _target_: str = "hydra_plugins.mlrefresh_plugins.optuna_search.OptunaSearch"
    _recursive_: bool = False  # the sampler is made by the sweeper, with the study's seed
    defaults: list[Any] = dataclasses.field(default_factory=lambda: [{"sampler": "tpe"}])
    sampler: Any = MISSING
    direction: Any = "minimize"  # or [minimize]: the study's one direction
    storage: Any = None  # an SQLAlchemy URL, journal:<file>, or null (in memory)
    study_name: str | None = "mlrefresh"
    n_trials: int = 20
    n_jobs: int = 1
    max_failure_rate: float = 1.0
    params: dict[str, str] | None = None
    custom_search_space: str | None = None
    objective: str = DEFAULT_OBJECTIVE


# hydra/sweeper/sampler=<name>: Optuna's samplers, any of their keyword arguments settable with
# +hydra.sweeper.sampler.<name>=... (checked before the study: settings.check_sweeper)
SAMPLERS = {
    "tpe": {"_target_": "optuna.samplers.TPESampler", "seed": None, "n_startup_trials": 10,
            "multivariate": False, "constant_liar": False},
    "random": {"_target_": "optuna.samplers.RandomSampler", "seed": None},
    "cmaes": {"_target_": "optuna.samplers.CmaEsSampler", "seed": None, "n_startup_trials": 1},
    "nsgaii": {"_target_": "optuna.samplers.NSGAIISampler", "seed": None, "population_size": 50},
    "qmc": {"_target_": "optuna.samplers.QMCSampler", "seed": None, "qmc_type": "sobol"},
    "grid": {"_target_": "optuna.samplers.GridSampler", "seed": None},  # the space: its grid
}  # fmt: skip

_store = ConfigStore.instance()
_store.store(
    group="hydra/sweeper", name="optuna_study", node=OptunaSearchConf, provider="mlrefresh"
)
for _name, _node in SAMPLERS.items():
    _store.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="mlrefresh")
