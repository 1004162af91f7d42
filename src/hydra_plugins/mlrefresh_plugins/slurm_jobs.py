"""hydra/launcher=slurm: submitit's SLURM launcher, with jobs that ended without a result said
in one line.

SLURM ends jobs on its own: `scancel`, a time limit, a node that died. submitit then raises
UncompletedJobError (or FailedJobError) out of the launcher, and Hydra prints its traceback.
Here the sweep ends with one line instead, `error: ... resume the sweep with: python
scripts/train.py -m sweep.resume=<folder>` and exit code 1: the jobs that finished are kept,
the interrupted ones continue from their last.pt (sweeps/resume.py). Everything else is the
plugin's own (configs/hydra/launcher/slurm.yaml).

Example:
    python scripts/train.py -m hydra/launcher=slurm hydra.launcher.partition=debug seed=1,2,3
"""

import shlex

from mlrefresh.errors import SweepStopped
from mlrefresh.runs.console import command

try:
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher
except ImportError:  # the `sweep` extra is missing: hydra/launcher=slurm says so (console.py)
    submitit_launcher = None

__all__ = ["SlurmLauncher"]


if submitit_launcher is not None:

    class SlurmLauncher(submitit_launcher.SlurmLauncher):
        """The plugin's SlurmLauncher; a job without a result ends the sweep in one line."""

        def launch(self, job_overrides, initial_job_idx):
            from submitit.core.utils import FailedJobError, UncompletedJobError

            try:
                return super().launch(job_overrides, initial_job_idx)
            except (UncompletedJobError, FailedJobError) as exc:
                sweep = str(self.config.hydra.sweep.dir)
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                resume = shlex.quote(f"sweep.resume={sweep}")
                raise SweepStopped(
                    f"a SLURM job of the sweep in {sweep} ended without a result (cancelled, "
                    f"out of time, or its node failed: {first}); the finished jobs are kept, "
                    f"resume the sweep with: {command()} -m {resume}"
                ) from None
