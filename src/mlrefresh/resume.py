"""trainer.resume=<run dir>: continue a run from its last.pt, with the config it was started with.

The run goes on in its own folder, from the end of its last finished epoch, with its saved
config. The command line may only say what agrees with that config, and `trainer.epochs=N` to
extend the run (the cosine schedule then stretches to the new length); anything else is
refused in one line, so that a resumed run is never silently a different experiment.

Example:
    python scripts/train.py trainer.epochs=40                 # interrupted at epoch 12/40
    python scripts/train.py trainer.resume=outputs/runs/2026-11-26/14-36-25
    python scripts/train.py trainer.resume=outputs/runs/2026-11-26/14-36-25 trainer.epochs=60
"""

import os

from omegaconf import OmegaConf

from mlrefresh.checkpoint import load_last
from mlrefresh.checks import flatten
from mlrefresh.errors import ResumeError

__all__ = ["FREE_KEYS", "command_line_keys", "resume_config"]

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


def resume_config(cfg, keys: list[str] | None):
    """(config to run, state from last.pt) for cfg.trainer.resume. `keys`: the keys given on the
    command line (None: compare every key of cfg with the saved config)."""
    run_dir = os.fspath(cfg.trainer.resume)
    state = load_last(run_dir)
    saved = state["config"]
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
    merged = OmegaConf.create(saved)
    merged.trainer.epochs = epochs
    merged.trainer.resume = run_dir
    return merged, state
