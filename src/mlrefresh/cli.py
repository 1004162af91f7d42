"""The command-line boundary: run train(cfg) for a Hydra job and turn mistakes into exit codes.

A `UserError` (bad config, missing data, no CUDA, divergence) prints one line, `error: ...`,
to stderr, with no traceback. A job refused before any work leaves no run directory behind.
In a sweep (-m) the other jobs still run; the process exits with the worst job's code.

Example (this is scripts/train.py):

    @hydra.main(version_base="1.3", config_path="../configs", config_name="train")
    def main(cfg):
        return run_job(cfg)

    if __name__ == "__main__":
        main()
        sys.exit(exit_status())
"""

import os
import shutil
import sys

from mlrefresh.errors import DivergedError, UserError
from mlrefresh.train import train

__all__ = ["exit_status", "run_job"]

_codes: list[int] = []


def _remove_if_untouched(run_dir):
    """Remove a run directory that holds only what Hydra wrote before the job started."""
    if not os.path.isdir(run_dir):
        return
    ours = [f for f in os.listdir(run_dir) if f != ".hydra" and not f.endswith(".log")]
    if not ours:
        shutil.rmtree(run_dir, ignore_errors=True)


def run_job(cfg) -> float | None:
    """train(cfg) inside a Hydra job; returns the final validation accuracy (None on error)."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = HydraConfig.get().runtime.output_dir
    try:
        return train(cfg, run_dir=run_dir)["accuracy/val"]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        _codes.append(exc.exit_code)
        if not isinstance(exc, DivergedError):
            _remove_if_untouched(run_dir)
        return None


def exit_status() -> int:
    """0 when every job of this process succeeded, else the worst job's exit code."""
    return max(_codes, default=0)
