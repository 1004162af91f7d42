"""A sweep's job folders: named after the job's overrides, made exclusively, found again.

`unique_subdir` is the resolver of configs/train.yaml's hydra.sweep.subdir
(`${unique_subdir:${hydra.sweep.dir},${hydra.job.override_dirname},${hydra.job.num}}`): a new
folder named after the job's overrides (`-1`, `-2`, ... for a name taken: an Optuna study that
samples the same choices twice), noted in `<sweep dir>/.jobs/<num>.folder`. A job gets its folder
back where it continues: a SLURM job that is requeued (its note), a job of a resumed sweep
(`.jobs/resume.json`: sweeps/resume.py writes the folders given back by name, an Optuna study
the folders of the trials it retries, by number).

Example:
    >>> import os, tempfile
    >>> from mlrefresh.runs.job_folders import unique_subdir
    >>> sweep = tempfile.mkdtemp()
    >>> unique_subdir(sweep, "seed=1", 0), unique_subdir(sweep, "seed=1", 1)
    ('seed=1', 'seed=1-1')
    >>> open(os.path.join(sweep, ".jobs", "1.folder")).read()
    'seed=1-1\\n'
"""

import hashlib
import json
import os
from pathlib import Path

from mlrefresh.runs.checkpoint import save_atomically
from mlrefresh.runs.rundir import JOBS, _cannot, _fresh

__all__ = ["RESUMED", "requeued", "unique_subdir"]

_MAX_NAME = 200  # a file name may have 255 bytes; keep room for a suffix
RESUMED = "resume.json"  # in .jobs/: the folders a resumed sweep's jobs get back (_resumed_folder)


def requeued() -> bool:
    """True in a SLURM job that was requeued (preempted or timed out, then started again)."""
    return os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")


def _resumed_folder(sweep_dir, name: str, num) -> str | None:
    """The folder from before this resumed sweep that job `num` named `name` gets back, from
    .jobs/resume.json: a list of folders given back by name (a grid's job names are its own),
    or {"folders": [...], "jobs": {num: folder}} (an Optuna study's: a trial retried gets the
    folder of the trial it replaces, a new trial a new folder; optuna_search.py)."""
    try:
        with open(Path(sweep_dir) / JOBS / RESUMED) as f:
            saved = json.load(f)
        if isinstance(saved, dict):
            folder = saved.get("jobs", {}).get(str(num))
            saved = saved.get("folders", [])
        else:
            folder = None
        folder = folder if isinstance(folder, str) else name if name in saved else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return folder if folder and (Path(sweep_dir) / folder).is_dir() else None


def unique_subdir(sweep_dir: str, name: str, num=0) -> str:
    """A new job folder in `sweep_dir` named after the job's overrides; its name. Jobs with the
    same overrides (an Optuna study sampling the same choices twice) get `name-1`, ... The name
    is noted in `<sweep_dir>/.jobs/<num>.folder`: a SLURM job that is requeued (submitit's
    preemption requeue) gets its own folder back, to resume from its last.pt. In a resumed sweep
    (sweeps/resume.py) a job that ran before gets its folder back."""
    name = str(name).replace(os.sep, "_") or f"job{num}"
    if len(name.encode()) > _MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = name.encode()[: _MAX_NAME - 9].decode(errors="ignore") + "-" + digest
    note = Path(sweep_dir) / JOBS / f"{num}.folder"
    if requeued() and note.is_file():
        return note.read_text().strip()
    try:
        resumed = _resumed_folder(sweep_dir, name, num)  # a resumed sweep: its own folder
        made = resumed or _fresh(Path(sweep_dir) / name).name
        note.parent.mkdir(exist_ok=True)
        save_atomically(note, lambda tmp: Path(tmp).write_text(made + "\n"))
        return made
    except OSError as exc:
        raise _cannot(os.path.join(sweep_dir, name), exc) from None
