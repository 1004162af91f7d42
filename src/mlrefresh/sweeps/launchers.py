"""What the parallel launchers need: their settings checked before a sweep starts, and how many
CPU threads a sweep's job may use, so that parallel jobs do not oversubscribe the cores.

`check_launcher` refuses, in one line before any job, what would otherwise end in a launcher's
traceback once the sweep has started: joblib's `n_jobs=0`, a SLURM launcher on a machine
without SLURM's commands, a stacked launcher's `max_models` that is not a number from 1.

torch starts one thread per core in every process. Under a parallel launcher, N jobs on C cores
then run N x C threads: 4 submitit_local jobs on 2 cores took 76-298 s for a sweep that takes
15 s with one thread per job. So each job of a parallel launcher gets C / (jobs at once)
threads: joblib runs `n_jobs` at once (-1: one per core); submitit gives a job
`cpus_per_task` (SLURM says so in SLURM_CPUS_PER_TASK), else one. A run of the basic or the
stacked launcher gets one thread, unless `trainer.threads=N` or OMP_NUM_THREADS says otherwise
(`run_threads`), and so does a stack of M jobs (the stacked launcher's training,
`stack_threads`): 12 stacked Fashion-MNIST jobs, 5 epochs, end to end on 2 cores (2026-12-06,
`python scripts/bench.py stacked [--busy 2]`): idle 9.8-10.1 s at one thread against 8.6-9.4 s
at two, beside two busy processes 15.8-18.8 s against 30.3-30.4 s (the stack had every core
until then, and a newcomer's 3 stacked seeds took 28.8 s against 3.8 s one by one). One
thread for a run, measured on 2 cores (2026-12-02, Fashion-MNIST softmax regression, 3 epochs,
pictures drawn at the epoch's end): with two busy processes beside it 0.98-1.07 s with one
thread against 2.5-3.6 s with torch's 2 (its OpenMP threads spin-wait for a core another
process holds), idle 0.55-0.86 s against 0.45-0.71 s. A run's products ([128, 784] x
[784, 10]) gain little from a second thread and lose much when the machine is shared.

Example:
    >>> job_threads({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher."
    ...              "JoblibLauncher", "n_jobs": 2}, cores=8, env={})
    4
    >>> job_threads({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},
    ...             cores=8, env={})
    1
    >>> slurm = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher."
    ...          "SlurmLauncher", "cpus_per_task": None}
    >>> job_threads(slurm, cores=64, env={}), job_threads(slurm, 64, {"SLURM_CPUS_PER_TASK": "4"})
    (1, 4)
"""

import os
import shutil

import torch

from mlrefresh.errors import ConfigError
from mlrefresh.sweeps.settings import check_launcher_keys

__all__ = [
    "check_launcher",
    "cores",
    "job_threads",
    "launcher_kind",
    "run_threads",
    "stack_threads",
    "use_threads",
]


def cores() -> int:
    """The cores this process may run on (not the machine's, under a cgroup or taskset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def launcher_kind(launcher: dict) -> str:
    """basic, stacked, joblib, slurm or submitit (local), from hydra.launcher's _target_."""
    target = str(launcher.get("_target_", ""))
    if not target or target.endswith("BasicLauncher"):
        return "basic"
    if target.endswith("StackedLauncher"):
        return "stacked"
    if "joblib" in target.lower():
        return "joblib"
    return "slurm" if target.endswith("SlurmLauncher") else "submitit"


def job_threads(launcher: dict, cores: int, env=os.environ) -> int | None:
    """Threads for one job under `launcher` (hydra.launcher), or None for torch's default (which
    follows OMP_NUM_THREADS when it is set)."""
    kind = launcher_kind(launcher)
    if kind in ("basic", "stacked"):
        return None if env.get("OMP_NUM_THREADS") else 1  # a run: see the module docstring
    if env.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return max(1, int(env["SLURM_CPUS_PER_TASK"]))
    if isinstance(launcher.get("cpus_per_task"), int) and launcher["cpus_per_task"] > 0:
        return launcher["cpus_per_task"]
    if kind == "joblib":
        n = launcher.get("n_jobs") or -1
        at_once = n if n > 0 else max(1, cores + 1 + n)  # joblib: -1 all cores, -2 all but one
        return max(1, cores // min(at_once, cores))
    return 1  # submitit without cpus_per_task starts every job at once


def _given(threads) -> bool:
    """Whether `trainer.threads` names a number of threads (null: choose one here)."""
    return isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1


def run_threads(threads, launcher: dict, cores: int, env=os.environ) -> int | None:
    """Threads for a run: `trainer.threads` when given; else the launcher's for one job
    (job_threads: a parallel launcher's share of the cores, one for a run of the basic or the
    stacked launcher, None for torch's default under OMP_NUM_THREADS)."""
    return threads if _given(threads) else job_threads(launcher, cores, env)


def stack_threads(threads, env=os.environ) -> int | None:
    """Threads for a stack of jobs (the stacked launcher): `trainer.threads` when given, torch's
    default under OMP_NUM_THREADS, else one, as a run (see the module docstring)."""
    if _given(threads):
        return threads
    return None if env.get("OMP_NUM_THREADS") else 1


def use_threads(n: int | None) -> int | None:
    """Set torch's threads to n (None: leave them); returns n."""
    if n is not None and n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n


def check_launcher(launcher: dict) -> None:
    """ConfigError for launcher settings that cannot work here (see the module docstring), and
    for keys or values the launcher does not have (settings.check_launcher_keys)."""
    kind = launcher_kind(launcher)
    check_launcher_keys(kind, launcher)
    if kind == "joblib":
        n = launcher.get("n_jobs")
        if not isinstance(n, int) or isinstance(n, bool) or n == 0:
            raise ConfigError(
                f"hydra.launcher.n_jobs={n} must be a whole number of processes, not 0 "
                "(-1: one per core), e.g. hydra.launcher.n_jobs=2"
            )
    if kind == "stacked":
        n = launcher.get("max_models")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(
                f"hydra.launcher.max_models={n} must be a whole number of jobs per stack, at "
                "least 1 (1: no stacking), e.g. hydra.launcher.max_models=16"
            )
    if kind == "slurm":
        missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
        if missing:
            raise ConfigError(
                f"the SLURM launcher needs SLURM's {missing[0]}, which is not on this machine's "
                "PATH; run from a cluster's login node, or start a one-node cluster here "
                "(sudo scripts/slurm_cluster.sh start)"
            )
