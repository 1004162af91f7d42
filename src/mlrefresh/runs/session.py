"""What one command learns while it runs, in one object: the folders it made and holds, the
sweep folder it claimed, and the exit codes of its jobs and sweeps.

Hydra calls our code back with nothing of ours: the folder resolvers (rundir.unique_dir) get
strings, the callbacks (RunFolders, SweepSummary) the config, the task function (cli.run_job)
the config. So the parts Hydra calls find the command's Session with `current()`, as Hydra's
own parts find theirs with HydraConfig.get(). cli.launch starts one for each command (the tests
run many commands in one process) and lets go of its folders at the end. Nothing else in
runs/ or sweeps/ keeps state between calls.

Example:
    >>> from mlrefresh.runs import session
    >>> s = session.start()
    >>> s.codes.append(2); session.current().worst()
    2
"""

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Session", "current", "start"]


@dataclass
class Session:
    created: list[Path] = field(default_factory=list)  # folders made, in order (rundir)
    before: dict[Path, set[str]] = field(default_factory=dict)  # named folders that existed:
    # their entries then (rundir.discard removes only what is new)
    sweep: str | None = None  # this command's sweep folder, once claimed (rundir)
    runs: list[str] = field(default_factory=list)  # each job's run folder, as it starts (cli)
    held: dict[Path, int] = field(default_factory=dict)  # folders held: the lock's descriptor
    codes: list[int] = field(default_factory=list)  # each job's run here, each sweep's worst

    def worst(self) -> int:
        """The command's exit code: 0 when every job succeeded, else the worst."""
        return max(self.codes, default=0)


_current = Session()  # a process that never called start(): a joblib worker, a test


def current() -> Session:
    return _current


def start() -> Session:
    """A new Session for a new command (cli.launch)."""
    global _current
    _current = Session()
    return _current
