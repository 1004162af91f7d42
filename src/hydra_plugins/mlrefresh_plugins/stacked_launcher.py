"""hydra/launcher=stacked: the jobs of a sweep that can share one training run as one stack.

Jobs whose configs agree in everything but `seed`, `optim.lr`, `optim.momentum`,
`optim.weight_decay`, `model.init` and `model.init_scale` (so: the same data, model shape,
loss, batch size, epochs, optimizer kind and schedule, device) form a group, trained as one
stacked model by mlrefresh.sweeps.stacking.train_stacked: each job with its own settings, seed,
batch order, folder and files, as it would be alone. Then every job runs its task function
through Hydra's own run_job, as under the basic launcher (.hydra/, train.log, callbacks, the
sweep summary): train(cfg) finds the job's run finished in its folder (or continues it from its
last.pt: a job the stack could not finish ends as it would alone). Jobs that cannot be grouped
(alone in their group, resumed, refused, or their data cannot be loaded) run one by one, as
under the basic launcher. Only jobs of the project's own task function (marked by
mlrefresh.runs.cli.task, as scripts/train.py's is) are stacked: a job does what its task
function does (Hydra's Launcher contract), so any other task function is called once per job,
as the basic launcher calls it, and its jobs' folders hold only what it wrote. In a resumed
sweep (sweeps/resume.py) the jobs that stopped at one epoch stack again, each from its own
last.pt; a finished job keeps its results. The jobs' configs are composed once and derived
for jobs that differ only in values (sweeps/job_configs.py, installed before the sweep starts;
this launcher installs it itself where nothing did).

Example:
    python scripts/train.py -m hydra/launcher=stacked optim.lr=0.03,0.1,0.3 seed=4,5,6,7
"""

import copy
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import OmegaConf, open_dict

from mlrefresh.errors import UserError
from mlrefresh.runs import signals
from mlrefresh.runs.checkpoint import LAST
from mlrefresh.runs.resume import own_last
from mlrefresh.sweeps.job_configs import JobConfigs
from mlrefresh.sweeps.launchers import stack_threads, use_threads
from mlrefresh.sweeps.stacking import train_stacked
from mlrefresh.validate import refuse_bad_config

__all__ = ["StackedLauncher", "StackedLauncherConf", "group_key"]

log = logging.getLogger(__name__)

PER_JOB = {
    "seed": None,
    "optim": ("lr", "momentum", "weight_decay"),
    "model": ("init", "init_scale"),
}


def group_key(task_cfg) -> str | None:
    """What jobs of one stack share (JSON), or None for a job that runs alone (resumed, or
    refused: it is refused by its own run, in its own words)."""
    try:
        refuse_bad_config(task_cfg)
        cfg = OmegaConf.to_container(task_cfg, resolve=True)
    except Exception:  # noqa: BLE001 (any refusal: the job's own run says it)
        return None
    if cfg["trainer"].get("resume"):
        return None
    for key, inner in PER_JOB.items():
        if inner is None:
            cfg.pop(key, None)
        else:
            for name in inner:
                cfg[key].pop(name, None)
    return json.dumps(cfg, sort_keys=True, default=str)


def _unfinished(task_cfg, folder):
    """The job's own last.pt when its run stopped before its last epoch (a resumed sweep), else
    None (none, finished, or another run's: the job's own run says what it is)."""
    try:
        state = own_last(folder, task_cfg)
    except Exception:  # noqa: BLE001 (damaged or foreign: its own run refuses it in one line)
        return None
    if state is None or state["epoch"] >= task_cfg.trainer.epochs:
        return None
    return state


class StackedLauncher(Launcher):
    def __init__(self, max_models: int = 32) -> None:
        self.max_models = max_models  # checked before the sweep (launchers.check_launcher)
        self.config = self.task_function = self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        if not isinstance(hydra_context.config_loader, JobConfigs):  # an app without our
            hydra_context.config_loader = JobConfigs(hydra_context.config_loader)  # callbacks
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context

    def _job_config(self, overrides, idx):
        sweep_config = self.hydra_context.config_loader.load_sweep_config(
            self.config, list(overrides)
        )
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = idx
            sweep_config.hydra.job.num = idx
        return sweep_config

    @staticmethod
    def _task_config(sweep_config):
        """The job's config without the hydra node, as Hydra's run_job gives the task."""
        task_cfg = copy.deepcopy(sweep_config)
        with open_dict(task_cfg):
            del task_cfg["hydra"]
        return task_cfg

    @staticmethod
    def _folder(sweep_config) -> str:
        """The job's output folder, as Hydra's run_job will make it (the resolver's result is
        cached in the config: run_job gets the same folder). The job's Hydra config is set
        first, as run_job sets it, for a `${hydra:...}` in the folder's name; run_job sets each
        job's again."""
        HydraConfig.instance().set_config(sweep_config)
        folder = str(OmegaConf.select(sweep_config, "hydra.sweep.dir"))
        subdir = str(OmegaConf.select(sweep_config, "hydra.sweep.subdir"))
        return os.path.abspath(os.path.join(folder, subdir))

    def _groups(self, tasks, folders, states) -> list[list[int]]:
        """The jobs to stack, in groups of at most max_models (a group of one runs alone). Jobs
        of a resumed sweep that stopped at one epoch (states: their own last.pt) stack again;
        a finished one, or one with a last.pt that is not its own, runs alone (runs/run.py)."""
        groups: dict[str, list[int]] = {}
        for i, task_cfg in enumerate(tasks):
            ran = os.path.exists(os.path.join(folders[i], LAST))
            key = group_key(task_cfg) if states[i] is not None or not ran else None
            if key is not None and states[i] is not None:
                key += f" from epoch {states[i]['epoch']}"
            if key is not None:
                groups.setdefault(key, []).append(i)
        chunks = []
        for members in groups.values():
            for start in range(0, len(members), self.max_models):
                chunk = members[start : start + self.max_models]
                if len(chunk) > 1:
                    chunks.append(chunk)
        return chunks

    def launch(self, job_overrides, initial_job_idx):
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        configs = [self._job_config(o, initial_job_idx + i) for i, o in enumerate(job_overrides)]
        tasks = [self._task_config(c) for c in configs]
        trained = set()
        folders = [self._folder(c) for c in configs]  # made now (cached: run_job gets them)
        states = [_unfinished(t, f) for t, f in zip(tasks, folders)]
        own = getattr(self.task_function, "mlrefresh_task", False)  # cli.task: else one by one
        chunks = self._groups(tasks, folders, states) if own else []
        log.info(f"Launching {len(configs)} jobs: {sum(map(len, chunks))} in {len(chunks)} "
                 f"stack(s), {len(configs) - sum(map(len, chunks))} one by one")  # fmt: skip
        for chunk in chunks:
            if signals.pending() is not None:  # Ctrl-C during a stack: no further stacks
                break
            numbers = ", ".join(f"#{initial_job_idx + i}" for i in chunk)
            after = states[chunk[0]]["epoch"] if states[chunk[0]] is not None else 0
            log.info(f"\tstacked: {numbers}" + (f" (resumed after epoch {after})" if after else ""))
            use_threads(stack_threads(tasks[chunk[0]].trainer.get("threads")))
            try:
                overrides = [list(configs[i].hydra.overrides.task) for i in chunk]
                outcomes = train_stacked([(tasks[i], folders[i], states[i], overrides[n])
                                          for n, i in enumerate(chunk)])  # fmt: skip
            except UserError as exc:  # the data cannot be loaded: each job says so itself
                log.info(f"\tthese jobs run one by one ({exc})")
                continue
            ended = sum(not isinstance(o, dict) for o in outcomes.values())
            log.info(f"\tstack trained: {len(chunk) - ended} finished, {ended} ended early "
                     "(each job's own lines follow)")  # fmt: skip
            trained.update(chunk)
        runs, stopped = [], None
        for i, sweep_config in enumerate(configs):
            if stopped is not None and i not in trained:
                continue  # interrupted: the jobs not yet trained do not start
            log.info(f"\t#{initial_job_idx + i} : {' '.join(filter_overrides(job_overrides[i]))}")
            try:
                ret = run_job(
                    hydra_context=self.hydra_context,
                    task_function=self.task_function,
                    config=sweep_config,
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
                runs.append(ret)
            except signals.Interrupted as exc:  # a stacked job's, or Ctrl-C in a job alone
                stopped = stopped or exc  # the other stacked jobs still end (their records)
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        if stopped is not None:
            raise stopped
        return runs


@dataclasses.dataclass
class StackedLauncherConf:
    """hydra/launcher=stacked, stored here so that every Hydra app finds it (an installed
    mlrefresh, Hydra's test runners): `hydra.launcher.max_models` jobs at most in one stack
    (memory: M x batch x features floats a step)."""

    _target_: str = "hydra_plugins.mlrefresh_plugins.stacked_launcher.StackedLauncher"
    max_models: Any = 32  # checked by launchers.check_launcher, in its own words


ConfigStore.instance().store(group="hydra/launcher", name="stacked", node=StackedLauncherConf,
                             provider="mlrefresh")  # fmt: skip
