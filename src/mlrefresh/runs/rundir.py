"""A folder of its own for every run and sweep, and never a file removed that a run did not make.

Hydra creates run folders with mkdir(exist_ok=True), so two runs started in the same second
would share `outputs/runs/<date>/<time>/`. The resolvers below create the folder exclusively,
adding `-1`, `-2`, ... when the name is taken, and note every folder they made in the command's
Session (session.py); configs/train.yaml uses them for hydra.run.dir, hydra.sweep.dir and
hydra.sweep.subdir (`${unique_subdir:...}`, a sweep's job folders: job_folders.py).

`RunFolders` (a Hydra callback) checks the folder before Hydra writes into it: one that cannot
be made (under a file, on a read-only file system) is refused in one line with exit code 2, and
so is a folder the user named that holds files already (a run there is continued only with
`trainer.resume=<folder>`). A run folder is held by one process at a time (locks.py: an advisory
lock that ends with its process, SIGKILL included); a second process is refused in one line. An
empty folder the user named is used, noting that it was there. When a run is refused,
`discard(run_dir)` removes only what this process made: the folders it created (and the empty
parents it created for them), or in a folder that existed before, only Hydra's new `.hydra/`
and log files. A folder it knows nothing about is left alone.

Example:
    >>> import tempfile, os
    >>> from mlrefresh.runs.rundir import unique_dir
    >>> base = os.path.join(tempfile.mkdtemp(), "runs", "12-00-00")
    >>> [os.path.basename(unique_dir(base)) for _ in range(3)]
    ['12-00-00', '12-00-00-1', '12-00-00-2']
"""

import contextlib
import itertools
import os
import shutil
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from mlrefresh.errors import OutputError, UserError
from mlrefresh.runs.locks import hold
from mlrefresh.runs.session import current

__all__ = [
    "RunFolders",
    "claim",
    "discard",
    "discard_unused",
    "register_resolvers",
    "sweep_dir",
    "unique_dir",
]

JOBS = ".jobs"  # in a sweep folder: each job's folder name here, its summary record (summary.py)


def _key(path) -> Path:
    return Path(os.path.abspath(path))


def _cannot(path, exc) -> OutputError:
    why = exc.strerror or type(exc).__name__
    return OutputError(
        f"cannot create the run folder {path} ({why}); choose another place with "
        "hydra.run.dir=... (or hydra.sweep.dir=... with -m)"
    )


def _make_parents(folder: Path) -> None:
    """mkdir -p, recording each folder this call made (not those another process made)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
            current().created.append(_key(folder))
        except FileExistsError:
            if not folder.is_dir():
                raise


def _fresh(path: Path) -> Path:
    """Create `path` exclusively, or `path-1`, `path-2`, ... if taken; return what was made."""
    for attempt in range(3):
        try:
            _make_parents(path.parent)
            for n in itertools.count():
                candidate = path if n == 0 else path.with_name(f"{path.name}-{n}")
                try:
                    candidate.mkdir()
                except FileExistsError:
                    continue
                current().created.append(_key(candidate))
                return candidate
        except FileNotFoundError:  # a parent was removed under us (a refused run): again
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def unique_dir(path: str) -> str:
    """A new folder at `path` (or `path-N`), created now; its path."""
    try:
        return str(_fresh(Path(path)))
    except OSError as exc:
        raise _cannot(path, exc) from None


def register_resolvers() -> None:
    from mlrefresh.runs.job_folders import unique_subdir

    for name, fn in (("unique_dir", unique_dir), ("unique_subdir", unique_subdir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=True)


def _holds_a_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in ("last.pt", "model.pt", ".hydra"))


def _not_empty(path, folder: Path, key: str, entries: list[str]) -> OutputError:
    if key == "hydra.run.dir" and _holds_a_run(folder):
        return OutputError(
            f"the run folder {path} holds a run already; continue it with "
            f"trainer.resume={path}, or give a new folder with hydra.run.dir=..."
        )
    shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
    return OutputError(
        f"the {'sweep' if key == 'hydra.sweep.dir' else 'run'} folder {path} is not empty "
        f"({shown}); give a new or empty folder with {key}=..."
    )


def _entries(folder: Path) -> list[str]:
    """What the folder holds; an empty `.jobs/` is nothing (killed writing its manifest)."""
    entries = os.listdir(folder)
    return [] if entries == [JOBS] and not os.listdir(folder / JOBS) else entries


def claim(path: str, key: str = "hydra.run.dir", resume: bool = False) -> None:
    """Before Hydra writes into `path`: make it if missing (remembering that we did) and hold
    it. A folder that holds files is refused unless the run resumes in it. OutputError when it
    cannot be this run's folder."""
    if not str(path).strip():
        raise OutputError(f"the run folder is empty ({key}=''); give a folder name")
    folder, made = Path(path), current().created
    try:
        if _key(folder) not in made:
            if folder.exists() and not folder.is_dir():
                raise OutputError(
                    f"the run folder {path} is a file, not a folder; choose another "
                    "hydra.run.dir (or hydra.sweep.dir with -m)"
                )
            _make_parents(folder)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write to the run folder {path}; choose another place")
        try:
            hold(folder)  # and its killed writers' temporary files removed (checkpoint.py)
            entries = _entries(folder)
            if entries and not resume and _key(folder) not in made:
                raise _not_empty(path, folder, key, entries)
        except OutputError:
            if _key(folder) in made:  # held by another process: its folder now, not ours
                made.remove(_key(folder))
            raise
        if _key(folder) not in made:
            current().before[_key(folder)] = set(entries)
    except OSError as exc:
        raise _cannot(path, exc) from None


def discard(run_dir) -> None:
    """Remove what this process made for a refused run, and nothing else (see the docstring)."""
    folder = _key(run_dir)
    if folder in current().created:
        shutil.rmtree(folder, ignore_errors=True)
    elif folder in current().before:
        for name in set(os.listdir(folder)) - current().before[folder]:
            if name == ".hydra":
                shutil.rmtree(folder / name, ignore_errors=True)
            elif name.endswith(".log"):
                (folder / name).unlink(missing_ok=True)
    for made in reversed(current().created):  # then the parents made for it, if now empty
        if made != folder and folder.is_relative_to(made):
            with contextlib.suppress(OSError):  # not empty (other runs), or gone
                made.rmdir()


def sweep_dir() -> str | None:
    """The folder of the sweep this process started (-m), if one started."""
    return current().sweep


def discard_unused() -> None:
    """Remove the folders this process made that hold nothing but Hydra's files (a run
    interrupted before it began), and Hydra's new files in a user's folder; results stay."""
    for made in reversed(current().created):
        if made.is_dir() and all(n == ".hydra" or n.endswith(".log") for n in os.listdir(made)):
            discard(made)
    for folder in list(current().before):
        discard(folder)


class RunFolders(Callback):
    """Hydra callback: claim the run (or sweep) folder before Hydra writes into it, check the
    launcher's settings and that each job composes before a sweep (launchers.check_launcher,
    job_configs.check_jobs), and let the held-back stderr through once the run starts (see
    console.HeldStderr)."""

    def on_run_start(self, config, **kwargs) -> None:
        self._claim(config, "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs) -> None:
        self._claim(config, "hydra.sweep.dir", launcher=True)

    def on_job_start(self, config, **kwargs) -> None:
        if release := getattr(sys.stderr, "release", None):  # Hydra's part of the job is over
            release()

    def on_job_end(self, config, **kwargs) -> None:
        """Between a sweep's jobs (run in this process), stderr is held: Hydra's writes into
        the next job's folder that fail end in a traceback, said in one line (cli.launch)."""
        from hydra.types import RunMode

        hold = getattr(sys.stderr, "hold", None)
        if hold and OmegaConf.select(config, "hydra.mode") == RunMode.MULTIRUN:
            hold()

    @staticmethod
    def _claim(config, key, launcher=False):
        from mlrefresh.sweeps.job_configs import check_jobs, install
        from mlrefresh.sweeps.launchers import check_launcher
        from mlrefresh.sweeps.resume import begin_sweep, read_manifest
        from mlrefresh.sweeps.settings import check_sweeper

        claimed = None
        try:
            try:
                path = OmegaConf.select(config, key)
            except Exception as exc:  # the resolver's OutputError, wrapped by OmegaConf (twice)
                cause = exc
                while cause is not None and not isinstance(cause, UserError):
                    cause = cause.__cause__ or cause.__context__
                if cause is not None:
                    raise cause from None
                raise
            resume = OmegaConf.select(config, "trainer.resume", default=None)
            in_place = key == "hydra.run.dir" and resume is not None and _key(resume) == _key(path)
            saved = read_manifest(path) if launcher else None  # a sweep run before: resumed
            claim(str(path), key, resume=in_place or saved is not None)
            claimed = str(path)
            if launcher:
                current().sweep = claimed
                check_launcher(OmegaConf.to_container(config.hydra.launcher, resolve=True))
                sweeper = OmegaConf.to_container(config.hydra.sweeper, resolve=True)
                check_sweeper(sweeper, list(config.hydra.overrides.task), config)
                check_jobs(config, install())  # each job composes (composed once, for all)
                begin_sweep(claimed, config, saved)
        except UserError as exc:
            error = exc
        else:
            error = None
        # a sweep starts: Hydra's part is over (a run's ends when its task starts, cli.run_job,
        # so that a failure of Hydra's own writes into the folder can still be said in one line)
        release = getattr(sys.stderr, "release", None)
        if release and (launcher or error is not None):
            release()
        if error is not None:
            if claimed is not None:  # the launcher was refused: the sweep folder goes again
                discard(claimed)
            print(f"error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(error.exit_code)
