"""A finished sweep's HParams table for TensorBoard: one "experiment" for all its jobs, written
into each job's folder by the sweep summary (summary.SweepSummary), so that the swept keys come
first and the metrics with the likelihood first (plots/tensorboard.sweep_experiment). A resumed
sweep's table replaces the one its earlier run wrote (and the sweep folder's own event file, where
earlier versions wrote it: TensorBoard showed it as a run named ".").

Example:
    python scripts/train.py -m loss=square,ce seed=1,2 hydra.sweep.dir=outputs/s
    tensorboard --logdir outputs/s      # HParams: loss.name, seed, ...; accuracy/val, nll/val
"""

import sys
from pathlib import Path

from mlrefresh.errors import UserError
from mlrefresh.plots.tensorboard import sweep_experiment

__all__ = ["write_hparams_table"]


def write_hparams_table(sweep_dir: Path, jobs) -> None:
    """The sweep's HParams table for TensorBoard (plots/tensorboard.sweep_experiment), from the
    jobs that wrote event files: each one's hyperparameters as its own writer gave them. jobs:
    (resolved config as flat keys, or None; the job's summary row)."""
    runs, metrics, folders = [], {}, []
    for config, r in jobs:
        if config and config.get("trainer.tensorboard") and r["status"] == "ok":
            runs.append({**config, "device.used": r.get("device")})
            metrics.update((k, None) for k, v in r.items() if "/" in k and v is not None)
            folders += [r["folder"]] if r.get("folder") and Path(r["folder"]).is_dir() else []
    if runs:
        before = list(Path(sweep_dir).glob("events.out.tfevents.*"))  # an earlier version's
        try:
            sweep_experiment(folders, runs, [*metrics, "grad_norm"])
        except UserError as exc:
            print(f"warning: no HParams table for the sweep: {exc}", file=sys.stderr, flush=True)
            return
        for old in before:  # replaced by the new one, which covers every job
            old.unlink(missing_ok=True)
