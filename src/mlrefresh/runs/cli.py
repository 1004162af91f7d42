"""The command-line boundary: run train(cfg) for a Hydra job and turn mistakes into exit codes.

A `UserError` (bad config, missing data, no CUDA, divergence) prints one line, `error: ...`, to
stderr, with no traceback, and sets the exit code (2; 1 for divergence). Ctrl-C and SIGTERM print
one line and exit 130 / 143. Hydra's own errors (unknown option, unknown key, an override it
cannot parse) get an `error:` first line and exit 2 (see console.HeldStderr). A job refused
before any work leaves nothing behind that it made (see rundir.discard). In a sweep (-m) the
other jobs still run; the process exits with the worst job's code.

Example (this is scripts/train.py):

    @hydra.main(version_base="1.3", config_path="../configs", config_name="train")
    @task  # the project's own job: the stacked launcher may train several as one stack
    def main(cfg):
        return run_job(cfg)

    if __name__ == "__main__":
        sys.exit(launch(main))
"""

import logging
import os
import re
import shlex
import signal
import sys

import torch
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from mlrefresh import schema
from mlrefresh.errors import ConfigError, DivergedError, SweepStopped, UserError
from mlrefresh.runs import job_folders, locks, rundir, session, signals
from mlrefresh.runs.checkpoint import LAST
from mlrefresh.runs.console import (
    COMMAND,
    SCRIPT,
    HeldStderr,
    command,
    hydra_error_from,
    hydra_quote,
    hydra_unquote,
    quiet_broken_pipe,
    quiet_writer_threads,
    sweep_without_multirun,
)
from mlrefresh.runs.run import train
from mlrefresh.sweeps import summary
from mlrefresh.sweeps.launchers import cores, launcher_kind, run_threads, use_threads
from mlrefresh.sweeps.resume import resume_argv
from mlrefresh.sweeps.settings import DEFAULT_OBJECTIVE

__all__ = ["exit_status", "launch", "run_job"]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _config_error(exc: OmegaConfBaseException) -> ConfigError:
    """An OmegaConf error met while reading the config (a missing group such as `~model`, a
    broken ${...} interpolation) as one line."""
    what = str(exc).splitlines()[0]
    key = re.search(r"full_key: (\S+)", str(exc))
    where = f" at {key.group(1)}" if key else ""
    return ConfigError(f"the config is broken{where}: {what}; check that override")


def _set_threads(hydra, cfg) -> None:
    """trainer.threads, or a parallel launcher's job its share of the cores, or one thread for a
    run (launchers.run_threads)."""
    launcher = OmegaConf.to_container(hydra.launcher, resolve=True)
    available = cores()
    n = use_threads(run_threads(OmegaConf.select(cfg, "trainer.threads"), launcher, available))
    if n is not None and launcher_kind(launcher) in ("joblib", "submitit", "slurm"):
        logging.getLogger(__name__).info("%d thread(s) per job (%d cores)", n, available)


def _refuse(exc: UserError, status: str = "refused") -> None:
    _say(f"error: {exc}")
    session.current().codes.append(exc.exit_code)
    summary.write_record(status, exc.exit_code, str(exc))


def task(function):
    """Marks `function` as the project's own task function: it runs `run_job(cfg)` on the job's
    config and nothing else (scripts/train.py's main). Hydra's Launcher contract is that a job
    does what its task function does, so the stacked launcher trains several jobs as one stack
    only for a marked function; any other it calls once per job, as Hydra's basic launcher."""
    function.mlrefresh_task = True
    return function


def run_job(cfg) -> float | None:
    """train(cfg) inside a Hydra job; returns the metric an Optuna study optimises
    (hydra.sweeper.objective, default nll/val; None on error). The job's folder is held while
    it runs: a second process in it is refused."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    run_dir = hydra.runtime.output_dir
    session.current().runs.append(run_dir)
    release = getattr(sys.stderr, "release", None)  # Hydra's part is over (console.HeldStderr)
    if release:
        release()
    try:
        took = locks.hold(run_dir)  # a run's folder is held since RunFolders claimed it
    except UserError as exc:  # another process is in this job's folder: leave it alone
        _refuse(exc)
        return None
    try:
        return _run_job(cfg, hydra, run_dir)
    finally:
        if took:
            locks.let_go(run_dir)


def _run_job(cfg, hydra, run_dir) -> float | None:
    _set_threads(hydra, cfg)
    if job_folders.requeued() and os.path.exists(os.path.join(run_dir, LAST)):
        logging.getLogger(__name__).info("requeued by SLURM: resuming %s from its last.pt", run_dir)
        with open_dict(cfg):
            cfg.trainer.resume = run_dir
    try:
        result = train(cfg, run_dir=run_dir)
    except (UserError, OmegaConfBaseException) as exc:
        if isinstance(exc, OmegaConfBaseException):
            exc = _config_error(exc)
        kept = getattr(exc, "kept", False)
        if not kept:  # refused before any work: remove what we made
            rundir.discard(run_dir)
        _refuse(
            exc, "diverged" if isinstance(exc, DivergedError) else "failed" if kept else "refused"
        )
        return None
    except signals.Interrupted as exc:
        _say(str(exc))
        if not getattr(exc, "kept", False):
            rundir.discard(run_dir)
        exc.reported = True
        summary.write_record("interrupted", exc.exit_code, str(exc))  # on_job_end will not run
        raise
    summary.write_record("ok", metrics=result)
    objective = OmegaConf.select(hydra, "sweeper.objective", default=None)
    return result.get(objective or DEFAULT_OBJECTIVE)


def exit_status() -> int:
    """0 when every job succeeded, else the worst job's exit code: of the jobs this process ran,
    and of the sweeps it summarised (jobs run by other processes: joblib, submitit)."""
    return session.current().worst()


def _resume_in_place(argv: list[str]) -> None:
    """`trainer.resume=DIR` continues the run in DIR: Hydra is told to use DIR as the run folder
    and not to overwrite the run's .hydra/ record with the resuming command's config."""
    where = [i for i, a in enumerate(argv) if i and a.lstrip("+").startswith("trainer.resume=")]
    if not where:
        return
    folder = hydra_unquote(argv[where[-1]].split("=", 1)[1])  # quoted for Hydra already, or not
    if folder in ("", "null"):
        return
    if any(a in ("-m", "--multirun") for a in argv) or any(
        a.startswith("hydra.run.dir=") for a in argv
    ):
        raise ConfigError(
            "trainer.resume continues one run in its own folder; drop -m and hydra.run.dir"
        )
    if not os.path.isdir(folder):
        raise ConfigError(
            f"trainer.resume={folder}: no such folder; give an earlier run's folder, e.g. "
            "trainer.resume=outputs/runs/<date>/<time>"
        )
    argv[where[-1]] = f"trainer.resume={hydra_quote(folder)}"
    argv += [f"hydra.run.dir={hydra_quote(folder)}", "hydra.output_subdir=null"]


def _hydra_exited(exc: SystemExit, held: HeldStderr) -> int:
    """The exit code when Hydra ended the program: its refusal of the command line said in one
    `error:` line first (and only that line where we can say all of it)."""
    code = exc.code if isinstance(exc.code, int) else 1
    cause = exc.__context__  # what Hydra caught before it exited (run_and_report)
    if code == 1 and not held.released and isinstance(cause, OSError) and cause.errno:
        held.drop()  # Hydra's traceback of its own write into the run folder
        rundir.discard_unused()
        where = f" ({cause.filename})" if cause.filename else ""
        if sweep := rundir.sweep_dir() if held.started else None:  # between a sweep's jobs
            _say(f"error: cannot write the files of the sweep's next job{where}: "
                 f"{cause.strerror or cause}; free some space, then resume the sweep with: "
                 f"{command()} -m {shlex.quote(f'sweep.resume={sweep}')}")  # fmt: skip
            return 2
        _say(f"error: cannot write the run's files{where}: {cause.strerror or cause}; free "
             "some space, or choose another place with hydra.run.dir=...")  # fmt: skip
        return 2
    if held.started:  # a sweep's job ended it (a bug: Hydra's traceback, exit 1)
        held.release()
        return code
    refusal = schema.error_line(getattr(cause, "__cause__", None))
    if code == 1 and not held.released and refusal:  # OmegaConf refused a value's type
        held.drop()
        rundir.discard_unused()
        _say(f"error: {refusal}")
        return 2
    if code == 1 and not held.released and held.rewrite(hydra_error_from(cause)):
        rundir.discard_unused()  # refused after the folder was claimed: nothing left
        return 2  # Hydra refused the command line before the run started
    if code == 2 and not held.released and held.rewrite_usage():
        return 2  # argparse refused a flag (one after the overrides, or unknown)
    held.release()
    return code


def _read_argv(argv: list[str]) -> int | None:
    """The command line made ready for Hydra (a sweep's saved overrides, trainer.resume's
    folder), or the exit code of its refusal, said in one line."""
    try:
        resume_argv(argv)  # -m sweep.resume=<folder>: that sweep's overrides
        if refusal := sweep_without_multirun(argv):
            _say(refusal)
            return 2
        _resume_in_place(argv)
    except UserError as exc:
        _say(f"error: {exc}")
        return exc.exit_code
    return None


def launch(hydra_main, program: str = SCRIPT, starting=()) -> int:
    """Run the @hydra.main function as the program; return the process's exit code. Each call
    starts from nothing an earlier call in the process left (tests run it in-process). `program`:
    how the user runs it (console.command); `starting`: the signals its imports received."""
    os.environ[COMMAND] = program
    signals.install()  # first: a signal from here on is said in one line
    if starting:  # checked after install(): a signal in between is in one or the other
        _say(f"interrupted ({signal.Signals(starting[0]).name}) while starting; nothing was run")
        return 128 + starting[0]
    threads = torch.get_num_threads()  # a command sets its own (_set_threads); put back after
    session.start()  # what this command learns: nothing yet (tests run many in one process)
    rundir.register_resolvers()
    quiet_broken_pipe()
    if (code := _read_argv(sys.argv)) is not None:
        return code
    quiet_writer_threads()
    held = HeldStderr(sys.stderr)
    original, sys.stderr = sys.stderr, held
    try:
        hydra_main()
    except SystemExit as exc:
        return _hydra_exited(exc, held)
    except ValueError as exc:  # Hydra's check of its own flags (-m with --cfg), before any run
        if held.released:
            raise
        held.release()
        _say(f"error: {exc}; give one of them per command")
        return 2
    except SweepStopped as exc:  # SLURM ended jobs (slurm_jobs.py)
        held.release()
        _say(f"error: {exc}")
        return exc.exit_code
    except signals.Interrupted as exc:
        signals.ignore()  # exiting: a second signal must not end us by the signal
        held.release()
        if not getattr(exc, "reported", False):
            if held.started and rundir.sweep_dir():  # jobs in other processes (joblib)
                sweep = rundir.sweep_dir()
                _say(f"{exc} during the sweep in {sweep}; resume it (finished jobs are kept, "
                     f"interrupted ones continue from their last.pt) with: {command()} -m "
                     f"{shlex.quote(f'sweep.resume={sweep}')}")  # fmt: skip
            else:
                _say(f"{exc} before the run started; nothing was saved")
            rundir.discard_unused()
        return exc.exit_code
    finally:
        held.release()
        sys.stderr = original
        locks.let_go()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return exit_status()
