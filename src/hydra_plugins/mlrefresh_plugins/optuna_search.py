"""Optuna's Hydra sweeper with a study that outlives its process, and failures said plainly
(configs/hparams_search/optuna.yaml).

The study is kept in a database (sweeps/study.py: `<sweep dir>/optuna.db` by default) and the
same command again continues it toward `n_trials`; trials of a dead process are retried. Each
trial's job number is its trial number. The objective is a metric of the run,
`hydra.sweeper.objective` (default `nll/val`, minimised: accuracy saturates, the likelihood
goes on telling runs apart); cli.run_job returns it. A trial that returns no number (a refused
or diverged run: its `error:` line is printed above) is a failed trial, logged as `a trial
failed (refused or diverged: see its error line)`; a study where no trial succeeded ends in one
line, `error: ...`, exit code 2 (or the worst job's). The search space (params, the custom
search space, a grid sampler) is the plugin's own.

Example:
    python scripts/train.py -m hparams_search=optuna hydra.sweeper.n_trials=10
"""

import dataclasses
import functools
import logging
import math
import os
import sys

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from mlrefresh.sweeps.settings import DEFAULT_OBJECTIVE
from mlrefresh.sweeps.study import ask, beating, open_study, reseed, trials_left

try:  # the plugin's light modules only: Hydra imports this one at every start, scanning plugins
    from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # the `sweep` extra is missing: hparams_search=optuna says so (console.py)
    OptunaSweeper = None

__all__ = ["OptunaSearch"]

log = logging.getLogger("hydra_plugins.hydra_optuna_sweeper._impl")


def _space(impl, arguments):
    """(distributions, fixed parameters, n_trials): the plugin's search space and its grid
    sampler's trial count."""
    import optuna  # here, not at the top: 1.5 s of imports that a plain run does not need
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    impl._process_searchspace_config()
    distributions, fixed = create_params_from_overrides(
        impl._parse_sweeper_params_config() + list(arguments)
    )
    space = {**(impl.search_space_distributions or {}), **distributions}
    n_trials = impl.n_trials
    sampler = impl.sampler
    if isinstance(sampler, functools.partial) and sampler.func == optuna.samplers.GridSampler:
        grid = {name: impl._to_grid_sampler_choices(d) for name, d in space.items()}
        impl.sampler = sampler(grid)
        n_trials = min(n_trials, math.prod(len(v) for v in grid.values()))
    for name in fixed:
        space.pop(name, None)
    return space, fixed, n_trials


def _tell(study, trials, returns) -> int:
    """Each trial's value (the job's return) or its failure; the number of failures."""
    from optuna.trial import TrialState

    failures = 0
    for trial, ret in zip(trials, returns):
        value = ret._return_value if ret.status.name == "COMPLETED" else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            study.tell(trial, float(value))
        else:
            study.tell(trial, state=TrialState.FAIL)
            log.warning("a trial failed (refused or diverged: see its error line)")
            failures += 1
    return failures


if OptunaSweeper is not None:

    class OptunaSearch(OptunaSweeper):
        """OptunaSweeper whose study lives in a database (see the module docstring)."""

        def __init__(self, *args, objective: str = DEFAULT_OBJECTIVE, **kwargs):
            super().__init__(*args, **kwargs)
            self.objective = objective  # read by cli.run_job from hydra.sweeper

        def sweep(self, arguments) -> None:
            impl = self.sweeper
            space, fixed, n_trials = _space(impl, arguments)
            sweep_dir = os.path.abspath(str(impl.config.hydra.sweep.dir))
            directions = impl._get_directions()
            study = open_study(impl.storage, impl.study_name, impl.sampler, directions, sweep_dir)
            done = n_trials - trials_left(study, n_trials)
            reseed(impl.sampler, OmegaConf.select(impl.config, "hydra.sweeper.sampler.seed"), done)
            log.info(f"Study name: {study.study_name}")
            log.info(f"Storage: {impl.storage or 'in memory'}; {done} of {n_trials} trials taken")
            log.info(f"Sampler: {type(impl.sampler).__name__}")
            log.info(f"Directions: {directions}; objective: {self.objective}")
            while trials := ask(study, n_trials, impl.n_jobs):
                for trial in trials:
                    trial.set_user_attr("sweep", sweep_dir)  # whose process runs it
                overrides = impl._configure_trials(trials, space, fixed)
                with beating(study, trials):
                    returns = impl.launcher.launch(overrides, initial_job_idx=trials[0].number)
                failures = _tell(study, trials, returns)
                if failures / len(returns) > impl.max_failure_rate:
                    _ = next(r for r in returns if r.status.name != "COMPLETED").return_value
            self._results(study, sweep_dir)

        def _results(self, study, sweep_dir) -> None:
            """optimization_results.yaml, as the plugin writes it; a study with no success ends
            in one line."""
            from optuna.trial import TrialState

            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not complete:
                failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
                print(f"error: no trial of the study succeeded ({failed} failed); see their "
                      "error lines, then fix or narrow the search (hydra.sweeper.params)",
                      file=sys.stderr, flush=True)  # fmt: skip
                return
            best = study.best_trial
            log.info(f"Best parameters: {best.params}")
            log.info(f"Best value: {best.value}")
            results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
            OmegaConf.save(OmegaConf.create(results), f"{sweep_dir}/optimization_results.yaml")

    @dataclasses.dataclass
    class OptunaSearchConf(OptunaSweeperConf):
        """hydra/sweeper=optuna_study: the plugin's settings, this class, and the objective
        (a name of its own: Hydra runs every plugin module again as it scans them, so an entry
        that replaced the plugin's `optuna` could be replaced back)."""

        _target_: str = "hydra_plugins.mlrefresh_plugins.optuna_search.OptunaSearch"
        objective: str = DEFAULT_OBJECTIVE

    ConfigStore.instance().store(group="hydra/sweeper", name="optuna_study", node=OptunaSearchConf,
                                 provider="mlrefresh")  # fmt: skip
