"""The one exception a user is meant to see: a mistake they can fix, said in one line.

`scripts/train.py` catches `UserError`, prints `error: <message>` to stderr and exits with
`exit_code` (2 for a bad config or input, as argparse does). Every other exception is a bug and
keeps its traceback.

Example:
    >>> from mlrefresh.errors import ConfigError
    >>> raise ConfigError("loss=ce needs a probability; use model=logistic")
    Traceback (most recent call last):
    ...
    mlrefresh.errors.ConfigError: loss=ce needs a probability; use model=logistic
"""


class UserError(Exception):
    """A problem with the user's config, files or machine, with what to do about it."""

    exit_code = 2


class ConfigError(UserError):
    """An invalid choice or value in the config, found before any work is done."""


class DataError(UserError):
    """A data set that is missing, corrupt or could not be downloaded."""


class DivergedError(UserError):
    """Training produced a NaN or infinite loss; what was logged so far is kept."""

    exit_code = 1


class OutputError(UserError):
    """A run folder or result file that cannot be created or written (a path under a file, a
    read-only place, a full disk)."""


class ResumeError(UserError):
    """trainer.resume names a folder that cannot be continued (no run, no or a corrupt last.pt,
    an override that contradicts the saved config)."""


class SweepStopped(BaseException):  # noqa: N818 (ends the program, as Interrupted does)
    """Jobs of a sweep ended without a result outside our process (SLURM cancelled them): the
    sweep stops, said in one line (cli.launch); its finished jobs are kept for a resume. A
    BaseException, so that Hydra passes it on instead of printing a traceback."""

    exit_code = 1


class CommandFailed(UserError):
    """mlrefresh.run or mlrefresh.sweep (api.py) ended as the command line would with an
    `error:` line: str(exc) is that line's text, exit_code the command's exit code."""

    def __init__(self, line: str, exit_code: int) -> None:
        super().__init__(line)
        self.exit_code = exit_code
