"""A sweep's job folders: named after the job's overrides, made exclusively, found again.

`unique_subdir` is the resolver of configs/train.yaml's hydra.sweep.subdir
(`${unique_subdir:${hydra.sweep.dir},${hydra.job.override_dirname},${hydra.job.num}}`): a new
folder named after the job's overrides, the swept keys first (`optim.lr=0.1,seed=2,dataset=xor`:
TensorBoard's run names are cut at their end; the keys the sweep's manifest, .jobs/sweep.json,
names as swept; Hydra's order where it names none, a sweep from before), `-1`, `-2`, ... for a
name taken (an Optuna study that samples the same choices twice), noted in
`<sweep dir>/.jobs/<num>.folder`. A job gets its folder
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
    >>> swept_first("dataset.classes=[3,8],optim.lr=0.1,seed=2", ["optim.lr", "seed"])
    'optim.lr=0.1,seed=2,dataset.classes=[3,8]'
"""

import hashlib
import json
import os
from pathlib import Path

from mlrefresh.runs.checkpoint import save_atomically
from mlrefresh.runs.rundir import JOBS, _cannot, _fresh

__all__ = ["MANIFEST", "RESUMED", "requeued", "short_name", "swept_first", "swept_keys",
           "unique_subdir"]  # fmt: skip

_MAX_NAME = 200  # a file name may have 255 bytes; keep room for a suffix
RESUMED = "resume.json"  # in .jobs/: the folders a resumed sweep's jobs get back (_resumed_folder)
MANIFEST = "sweep.json"  # in .jobs/: the sweep's command, written before its first job


def swept_keys(overrides: list[str], params) -> list[str]:
    """The keys a sweep varies: its overrides with more than one value (`seed=1,2`, `range`,
    `choice`, `interval`), then its sweeper's params (hydra.sweeper.params: an experiment's
    sweep, an Optuna search space) that do."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = list(overrides) + [f"{k}={v}" for k, v in (params or {}).items()]
    try:
        parsed = OverridesParser.create().parse_overrides(given)
    except Exception:  # noqa: BLE001 (Hydra parsed them already; if not: Hydra's order)
        return []
    return list(dict.fromkeys(o.key_or_group for o in parsed if o.is_sweep_override()))


def _items(name: str) -> list[str]:
    """`a=1,b=[1,2],c='x,y'`: the items of Hydra's override_dirname, split at the commas
    outside brackets and quotes."""
    items, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(name):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(name[start:i])
            start = i + 1
    return [*items, name[start:]]


def swept_first(name: str, swept) -> str:
    """Hydra's override_dirname with the swept keys' items first, in the order of `swept`."""
    items = _items(name)
    key = lambda item: item.split("=", 1)[0].lstrip("+~")  # noqa: E731
    first = [i for k in swept for i in items if key(i) == k]
    return ",".join(first + [i for i in items if i not in first])


def _swept(sweep_dir) -> list[str]:
    try:
        with open(Path(sweep_dir) / JOBS / MANIFEST) as f:
            swept = json.load(f).get("swept")
    except (OSError, ValueError, AttributeError):
        return []
    return [k for k in swept if isinstance(k, str)] if isinstance(swept, list) else []


def short_name(name: str) -> str:
    """A folder name of at most 200 bytes: a longer one cut, with a digest of the whole."""
    if len(name.encode()) > _MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = name.encode()[: _MAX_NAME - 9].decode(errors="ignore") + "-" + digest
    return name


def requeued() -> bool:
    """True in a SLURM job that was requeued (preempted or timed out, then started again)."""
    return os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")


def _named(saved: list, name: str, hydra_name: str) -> str | None:
    """The saved folder of the job with these overrides: named so (or in Hydra's order, a
    sweep from before; or with other keys first, a sweep whose resume sweeps more keys)."""
    if name in saved or hydra_name in saved:
        return name if name in saved else hydra_name
    items = sorted(_items(name))
    return next((f for f in saved if isinstance(f, str) and sorted(_items(f)) == items), None)


def _resumed_folder(sweep_dir, name: str, num, hydra_name=None) -> str | None:
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
        folder = folder if isinstance(folder, str) else _named(saved, name, hydra_name or name)
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return folder if folder and (Path(sweep_dir) / folder).is_dir() else None


def unique_subdir(sweep_dir: str, name: str, num=0) -> str:
    """A new job folder in `sweep_dir` named after the job's overrides; its name. Jobs with the
    same overrides (an Optuna study sampling the same choices twice) get `name-1`, ... The name
    is noted in `<sweep_dir>/.jobs/<num>.folder`: a SLURM job that is requeued (submitit's
    preemption requeue) gets its own folder back, to resume from its last.pt. In a resumed sweep
    (sweeps/resume.py) a job that ran before gets its folder back."""
    hydra_name = short_name(str(name).replace(os.sep, "_") or f"job{num}")
    name = short_name(swept_first(str(name), _swept(sweep_dir)).replace(os.sep, "_") or f"job{num}")
    note = Path(sweep_dir) / JOBS / f"{num}.folder"
    if requeued() and note.is_file():
        return note.read_text().strip()
    try:
        resumed = _resumed_folder(sweep_dir, name, num, hydra_name)  # a resumed sweep: its own
        made = resumed or _fresh(Path(sweep_dir) / name).name
        note.parent.mkdir(exist_ok=True)
        save_atomically(note, lambda tmp: Path(tmp).write_text(made + "\n"))
        return made
    except OSError as exc:
        raise _cannot(os.path.join(sweep_dir, name), exc) from None
