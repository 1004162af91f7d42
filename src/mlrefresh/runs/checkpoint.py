"""Files a run writes, written whole or not at all, and last.pt, the state a run resumes from.

Every file goes to a temporary name of its own, then is renamed into place.

A kill at any moment leaves the previous file or the new one, never half of one; the temporary
name is unique (`.model.pt.<random>.tmp`), so two writers in one folder never share it, and it
is removed whatever goes wrong (a full disk, Ctrl-C). A write that fails says so in one line
(`OutputError`). Only SIGKILL (or a power cut) leaves the temporary file behind: the next process
that holds the folder removes it (`remove_leftovers`, called by locks.hold; our own file names
only, never a user's file).

`save_last` writes last.pt at the end of an epoch: model, optimizer, RNG states, the metrics so
far and the config; `load_last` reads it back for `trainer.resume=<run dir>`, refusing a missing
or corrupt file in one line (`ResumeError`).

Example:
    >>> import os, tempfile
    >>> from mlrefresh.runs.checkpoint import save_json
    >>> folder = tempfile.mkdtemp()
    >>> save_json(os.path.join(folder, "metrics.json"), {"accuracy/val": 0.99})
    >>> os.listdir(folder)
    ['metrics.json']
"""

import contextlib
import json
import os
import re
import shutil
import tempfile
import warnings

import torch
from omegaconf import OmegaConf

from mlrefresh.errors import OutputError, ResumeError

__all__ = ["LAST", "load_last", "remove_leftovers", "save_atomically", "save_json", "save_last",
           "save_torch", "to_cpu"]  # fmt: skip

# the temporary files save_atomically makes for the files we write (mkstemp: 8 random characters)
_OURS = (
    r"last\.pt|model\.pt|metrics\.json|summary\.csv|sweep\.json|resume\.json|\d+\.json|\d+\.folder"
)
LEFTOVER = re.compile(rf"\.(?:{_OURS})\.[a-z0-9_]{{8}}\.tmp")

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def save_atomically(path, write) -> None:
    """write(tmp_path) into a fresh temporary file beside `path`, then rename it to `path`."""
    folder, name = os.path.split(os.fspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder or ".")
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a result file is as open() makes it
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as RuntimeError
        if isinstance(exc, OSError):
            why = exc.strerror or str(exc)
        elif shutil.disk_usage(folder or ".").free < (1 << 20):
            why = "No space left on device"
        else:
            why = str(exc).splitlines()[0]
        raise OutputError(
            f"cannot write {path} ({why}); free some space or choose another run folder "
            "(hydra.run.dir=...)"
        ) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def remove_leftovers(folder) -> list[str]:
    """Remove the temporary files of writes that a kill interrupted in `folder` and its `.jobs/`
    (only save_atomically's names for our own files); the names removed. Call it only while
    holding the folder: another live process may be writing there otherwise."""
    removed = []
    for where in (folder, os.path.join(folder, ".jobs")):
        try:
            names = os.listdir(where)
        except OSError:
            continue
        for name in names:
            if LEFTOVER.fullmatch(name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(where, name))
                removed.append(name)
    return removed


def save_json(path, obj) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())

    save_atomically(path, write)


def save_torch(path, obj) -> None:
    save_atomically(path, lambda tmp: torch.save(obj, tmp))


# --- last.pt: everything a run needs to continue exactly where it stopped ----------------------

LAST = "last.pt"
_KEYS = ("epoch", "model", "optimizer", "rng", "history", "config", "seconds")


def to_cpu(tree):
    """A copy of tensors (in dicts and lists) on the CPU: a checkpoint that loads anywhere."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return {k: to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [to_cpu(v) for v in tree]
    return tree


def saved_config(cfg) -> dict:
    """The resolved config a run's last.pt and model.pt hold: without Hydra's node, and with
    trainer.resume unset (the config the run was started with)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)
    resolved["trainer"]["resume"] = None
    return resolved


def save_last(run_dir, *, epoch, model, optimizer, generator, history, config, seconds,
              **extra) -> None:  # fmt: skip
    """last.pt after `epoch`: the model's and the optimizer's state_dict, the RNG states that
        decide what happens next (the batch-order generator and torch's global one), the metrics of
        every epoch so far and the resolved config (and `extra`: `stack`, the number of jobs trained
    together, for a job of sweeps/stacking.py). Loadable with torch.load(..., weights_only=True)."""
    rng = {"batch_order": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    state = {
        "epoch": epoch,
        "model": to_cpu(model),
        "optimizer": to_cpu(optimizer),
        "rng": rng,
        "history": history,
        "config": config,
        "seconds": seconds,
        **extra,
    }
    save_torch(os.path.join(run_dir, LAST), state)


def load_last(run_dir) -> dict:
    """The state saved by save_last, or a ResumeError (one line) saying why not."""
    path = os.path.join(run_dir, LAST)
    if not os.path.isdir(run_dir):
        raise ResumeError(f"trainer.resume={run_dir}: no such folder; give an earlier run's folder")
    if not os.path.exists(path):
        is_run = os.path.isdir(os.path.join(run_dir, ".hydra"))
        what = "a run folder without last.pt" if is_run else "not a run folder"
        raise ResumeError(
            f"trainer.resume={run_dir}: {what} (no {LAST}); resume a run that finished at least "
            "one epoch, e.g. trainer.resume=outputs/runs/<date>/<time>"
        )
    try:
        with warnings.catch_warnings():  # torch warns before it refuses a plain pickle
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated zip, a pickle error, an unexpected type, ...
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ResumeError(f"{path} is corrupt ({why[:120]}); it cannot be resumed") from None
    if not isinstance(state, dict) or any(k not in state for k in _KEYS):
        raise ResumeError(f"{path} is not a checkpoint of this project; it cannot be resumed")
    return state
