"""The command-line boundary: run train(cfg) for a Hydra job and turn mistakes into exit codes.

A `UserError` (bad config, missing data, no CUDA, divergence) prints one line, `error: ...`, to
stderr, with no traceback, and sets the exit code (2; 1 for divergence). Ctrl-C and SIGTERM print
one line and exit 130 / 143. Hydra's own errors (unknown option, unknown key, an override it
cannot parse) get an `error:` first line and exit 2 (see console.HeldStderr). A job refused
before any work leaves nothing behind that it made (see rundir.discard). In a sweep (-m) the
other jobs still run; the process exits with the worst job's code.

Example (this is scripts/train.py):

    @hydra.main(version_base="1.3", config_path="../configs", config_name="train")
    def main(cfg):
        return run_job(cfg)

    if __name__ == "__main__":
        sys.exit(launch(main))
"""

import os
import re
import sys

from omegaconf.errors import OmegaConfBaseException

from mlrefresh import rundir, signals
from mlrefresh.console import HeldStderr, quiet_broken_pipe, quiet_writer_threads
from mlrefresh.errors import ConfigError, UserError
from mlrefresh.train import train

__all__ = ["exit_status", "launch", "run_job"]

_codes: list[int] = []

rundir.register_resolvers()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _config_error(exc: OmegaConfBaseException) -> ConfigError:
    """An OmegaConf error met while reading the config (a missing group such as `~model`, a
    broken ${...} interpolation) as one line."""
    what = str(exc).splitlines()[0]
    key = re.search(r"full_key: (\S+)", str(exc))
    where = f" at {key.group(1)}" if key else ""
    return ConfigError(f"the config is broken{where}: {what}; check that override")


def run_job(cfg) -> float | None:
    """train(cfg) inside a Hydra job; returns the final validation accuracy (None on error)."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = HydraConfig.get().runtime.output_dir
    try:
        return train(cfg, run_dir=run_dir)["accuracy/val"]
    except (UserError, OmegaConfBaseException) as exc:
        if isinstance(exc, OmegaConfBaseException):
            exc = _config_error(exc)
        _say(f"error: {exc}")
        _codes.append(exc.exit_code)
        if not getattr(exc, "kept", False):  # refused before any work: remove what we made
            rundir.discard(run_dir)
        return None
    except signals.Interrupted as exc:
        _say(str(exc))
        if not getattr(exc, "kept", False):
            rundir.discard(run_dir)
        exc.reported = True
        raise


def exit_status() -> int:
    """0 when every job of this process succeeded, else the worst job's exit code."""
    return max(_codes, default=0)


def _resume_in_place(argv: list[str]) -> None:
    """`trainer.resume=DIR` continues the run in DIR: Hydra is told to use DIR as the run folder
    and not to overwrite the run's .hydra/ record with the resuming command's config."""
    values = [a.split("=", 1)[1] for a in argv[1:] if a.lstrip("+").startswith("trainer.resume=")]
    if not values or values[-1] in ("", "null"):
        return
    folder = values[-1]
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
    argv += [f"hydra.run.dir={folder}", "hydra.output_subdir=null"]


def launch(hydra_main) -> int:
    """Run the @hydra.main function as the program; return the process's exit code."""
    try:
        _resume_in_place(sys.argv)
    except UserError as exc:
        _say(f"error: {exc}")
        return exc.exit_code
    signals.install()
    quiet_broken_pipe()
    quiet_writer_threads()
    held = HeldStderr(sys.stderr)
    original, sys.stderr = sys.stderr, held
    try:
        hydra_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        if code == 1 and not held.released and held.rewrite():
            return 2  # Hydra refused the command line before the run started
        held.release()
        return code
    except signals.Interrupted as exc:
        held.release()
        if not getattr(exc, "reported", False):
            _say(f"{exc} before the run started; nothing was saved")
            rundir.discard_unused()
        return exc.exit_code
    finally:
        held.release()
        sys.stderr = original
    return exit_status()
