"""trainer.resume=<run dir>: continue a run from its last.pt, with the config it was started with.

The run goes on in its own folder, from the end of its last finished epoch, with its saved
config. The command line may only say what agrees with that config, and `trainer.epochs=N` to
extend the run (the cosine schedule then stretches to the new length); anything else is
refused in one line, so that a resumed run is never silently a different experiment.

Every field of last.pt is checked before it is used (`check_state`, and `check_tensors` against
the model and optimizer the config builds): a checkpoint from another model shape, with an
impossible epoch, damaged RNG states or history, or copied from another run's folder, is refused
in one line ("last.pt in <dir> does not belong to this run: ...") and nothing in the folder
changes.

Example:
    python scripts/train.py trainer.epochs=40                 # interrupted at epoch 12/40
    python scripts/train.py trainer.resume=outputs/runs/2026-11-26/14-36-25
    python scripts/train.py trainer.resume=outputs/runs/2026-11-26/14-36-25 trainer.epochs=60
"""

import math
import os

import torch
from omegaconf import OmegaConf

from mlrefresh.checks import flatten
from mlrefresh.errors import ResumeError
from mlrefresh.runs.checkpoint import LAST, load_last, saved_config
from mlrefresh.schema import complete

__all__ = [
    "FREE_KEYS",
    "check_state",
    "check_tensors",
    "command_line_keys",
    "own_last",
    "resume_config",
]

FREE_KEYS = ("trainer.resume", "trainer.epochs")  # may differ from the saved config


def command_line_keys() -> list[str] | None:
    """The keys the command line set (from Hydra's task overrides), or None outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    keys = []
    for override in HydraConfig.get().overrides.task:
        key = override.split("=", 1)[0].lstrip("+~")
        keys.append(key.split("@", 1)[0])
    return keys


def _select(tree, key):
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "<absent>"
        node = node[part]
    return node


def _foreign(run_dir, why: str) -> ResumeError:
    return ResumeError(
        f"last.pt in {run_dir} does not belong to this run: {why}; it cannot be resumed (start "
        "a new run, or resume the folder it came from)"
    )


def _rng_size() -> int:
    return torch.Generator().get_state().numel()


def _own_config(run_dir) -> dict | None:
    """The config Hydra saved in the run folder (.hydra/config.yaml), resolved; None if absent
    or unreadable."""
    path = os.path.join(run_dir, ".hydra", "config.yaml")
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception:  # absent (hydra.output_subdir=null), or not resolvable on its own
        return None


def check_state(state: dict, run_dir) -> None:
    """Every field of last.pt that does not need the model: types, ranges, and that its config
    is the config of the run in this folder."""
    epoch, config, history = state["epoch"], state["config"], state["history"]
    if not isinstance(config, dict) or not all(
        isinstance(config.get(g), dict) for g in ("model", "loss", "trainer", "dataset", "optim")
    ):
        raise _foreign(run_dir, "its config is not a run's config")  # fmt: skip
    saved_epochs = config["trainer"].get("epochs")
    if type(epoch) is not int or not 1 <= epoch <= (saved_epochs or 0):
        raise _foreign(run_dir, f"epoch {epoch!r} is not a whole number from 1 to {saved_epochs}")
    if not isinstance(history, list) or len(history) != epoch:
        raise _foreign(run_dir, f"its history has no entry for each of its {epoch} epochs")
    if not all(isinstance(h, dict) for h in history):
        raise _foreign(run_dir, "its history holds something other than an epoch's metrics")
    seconds = state["seconds"]
    if type(seconds) not in (int, float) or not (math.isfinite(seconds) and seconds >= 0):
        raise _foreign(run_dir, f"seconds={seconds!r} is not a time")
    rng = state["rng"]
    for name in ("batch_order", "torch"):
        t = rng.get(name) if isinstance(rng, dict) else None
        if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.numel() != _rng_size():
            raise _foreign(run_dir, f"its random-number state {name!r} is missing or damaged")
    if not isinstance(state["model"], dict) or not isinstance(state["optimizer"], dict):
        raise _foreign(run_dir, "its model or optimizer state is not a state_dict")
    own = _own_config(run_dir)
    if own is not None:
        mine, saved = flatten(own), flatten(config)
        differ = [k for k in mine if k in saved and k not in FREE_KEYS and mine[k] != saved[k]]
        if differ:
            k = differ[0]
            raise _foreign(run_dir, f"it was saved by a run with {k}={saved[k]}, and this "
                           f"folder's run has {k}={mine[k]}")  # fmt: skip


def check_tensors(run_dir, what: str, saved, expected) -> None:
    """`saved` (a state_dict part) has the structure of `expected`: the same keys, lists of the
    same length, tensors of the same shape, numbers where numbers are."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(saved, torch.Tensor) or saved.shape != expected.shape:
            got = tuple(saved.shape) if isinstance(saved, torch.Tensor) else type(saved).__name__
            raise _foreign(run_dir, f"its {what} is {got}, the config's model needs "
                           f"{tuple(expected.shape)}")  # fmt: skip
    elif isinstance(expected, dict):
        if not isinstance(saved, dict) or set(saved) != set(expected):
            raise _foreign(run_dir, f"its {what} has other parts than the config's model")
        for key in expected:
            check_tensors(run_dir, f"{what} {key}", saved[key], expected[key])
    elif isinstance(expected, list):
        if not isinstance(saved, list) or len(saved) != len(expected):
            raise _foreign(run_dir, f"its {what} has other parts than the config's model")
        for i, (a, b) in enumerate(zip(saved, expected)):
            check_tensors(run_dir, f"{what} {i}", a, b)
    elif isinstance(expected, int) and (type(saved) is not int or saved < 0):
        raise _foreign(run_dir, f"its {what} is {saved!r}, not a step count")
    elif expected is None and saved is not None:
        raise _foreign(run_dir, f"its {what} is {type(saved).__name__}, not empty")


def resume_config(cfg, keys: list[str] | None):
    """(config to run, state from last.pt) for cfg.trainer.resume. `keys`: the keys given on the
    command line (None: compare every key of cfg with the saved config)."""
    run_dir = os.fspath(cfg.trainer.resume)
    state = load_last(run_dir)
    check_state(state, run_dir)
    merged = complete(OmegaConf.create(state["config"]))  # an earlier version's: new keys default
    saved = OmegaConf.to_container(merged)
    given = OmegaConf.to_container(cfg, resolve=True)
    given.pop("hydra", None)
    if keys is None:
        keys = list(flatten(given))
    for key in keys:
        if key in FREE_KEYS or key.startswith("hydra"):
            continue
        if _select(given, key) != _select(saved, key):
            raise ResumeError(
                f"{key}={_select(given, key)} contradicts the run being resumed ({key}="
                f"{_select(saved, key)} in {run_dir}); drop it: a resumed run keeps its config "
                "(only trainer.epochs may change)"
            )
    epochs = cfg.trainer.epochs if "trainer.epochs" in keys else saved["trainer"]["epochs"]
    if isinstance(epochs, int) and epochs < state["epoch"]:
        raise ResumeError(
            f"trainer.epochs={epochs} but {run_dir} has already trained {state['epoch']} epochs; "
            "give at least that many"
        )
    merged.trainer.epochs = epochs
    merged.trainer.resume = run_dir
    return merged, state


def own_last(run_dir, cfg) -> dict | None:
    """The checked state of run_dir/last.pt when it was saved by this very run (the same
    resolved config: a job a stack trained, see sweeps/stacking.py), else None."""
    if not os.path.isfile(os.path.join(run_dir, LAST)):
        return None
    state = load_last(run_dir)
    if state["config"] != saved_config(cfg):
        return None  # another run's: this run starts afresh and replaces it
    check_state(state, run_dir)
    return state
