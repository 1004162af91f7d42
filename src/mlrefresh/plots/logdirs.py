"""Which folders TensorBoard opens: the latest sweep or run under outputs/ unless told otherwise.

After a week a student's outputs/ holds 100+ runs: TensorBoard on all of them selects none
above 40 (the charts are empty until runs are ticked), and its HParams dashboard takes one
sweep's table for every sweep. `make tensorboard` (scripts/open_tensorboard.py) opens the
latest sweep or run instead; a folder, several, a glob or --all open others. Each sweep
keeps its own HParams table in its jobs' folders (plots/tensorboard.sweep_experiment), so a
sweep opened on its own shows its columns.

Example:
    >>> from mlrefresh.plots.logdirs import tensorboard_args
    >>> tensorboard_args(["outputs/multirun/a"])
    ['--logdir', 'outputs/multirun/a']
    >>> tensorboard_args(["outputs/claims/x/kl", "outputs/claims/y/kl"])
    ['--logdir_spec', 'kl:outputs/claims/x/kl,kl-1:outputs/claims/y/kl']
"""

import os
from pathlib import Path

from mlrefresh.errors import ConfigError

__all__ = ["count_runs", "latest", "runs_and_sweeps", "tensorboard_args"]

MOST_SELECTED = 40  # above this many runs, TensorBoard's run selector ticks none by default


def _is_sweep(folder: Path) -> bool:
    return (folder / ".jobs").is_dir() or (folder / "multirun.yaml").is_file()


def runs_and_sweeps(top) -> list[Path]:
    """The sweep folders and the run folders (not a sweep's jobs) under `top`."""
    found = []
    for here, subdirs, _ in os.walk(top):
        here = Path(here)
        if _is_sweep(here) or (here / ".hydra").is_dir():
            found.append(here)
            subdirs.clear()
        else:
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
    return found


def latest(top="outputs") -> Path | None:
    """The sweep or run under `top` that changed last (made, or resumed), or None."""
    found = runs_and_sweeps(top)
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def count_runs(folder) -> int:
    """The runs TensorBoard shows for `folder`: the folders with an event file."""
    return sum(any("tfevents" in n for n in names) for _, _, names in os.walk(folder))


def tensorboard_args(folders) -> list[str]:
    """TensorBoard's arguments for `folders`: --logdir for one, else --logdir_spec with each
    folder named by its last part (`-1`, `-2`, ... for a name taken)."""
    folders = [str(f) for f in folders]
    if len(folders) == 1:
        return ["--logdir", folders[0]]
    names, spec = set(), []
    for folder in folders:
        if "," in folder or ":" in folder:
            raise ConfigError(f"{folder}: TensorBoard cannot open several folders when one has a "
                              "comma or colon in its path; open it on its own")  # fmt: skip
        base = Path(folder).name or "run"
        name = next(n for i in range(len(folders) + 1)
                    if (n := base if i == 0 else f"{base}-{i}") not in names)  # fmt: skip
        names.add(name)
        spec.append(f"{name}:{folder}")
    return ["--logdir_spec", ",".join(spec)]
