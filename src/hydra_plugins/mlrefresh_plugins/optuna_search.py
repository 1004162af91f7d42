"""Optuna's Hydra sweeper, with failed trials said plainly (configs/hparams_search/optuna.yaml).

Hydra's Optuna sweeper records a trial whose job returned no number (a refused or diverged
run: its `error:` line is printed above) as a failed trial, but logs it as `Return value must
be float-castable. Got 'None'`; and a study where no trial succeeded ends in Optuna's
`ValueError: No trials are completed yet` traceback. This subclass logs `trial N failed
(refused or diverged: see its error line)`, and ends a study without a success in one line,
`error: ...`, exit code 2 (or the worst job's). Everything else is the plugin's own.

Example:
    python scripts/train.py -m hparams_search=optuna hydra.sweeper.n_trials=10
"""

import logging
import sys

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # the `sweep` extra is missing: hparams_search=optuna says so (console.py)
    OptunaSweeper = None

__all__ = ["OptunaSearch"]

_PLUGIN_LOG = "hydra_plugins.hydra_optuna_sweeper._impl"


class _FailedTrials(logging.Filter):
    def __init__(self):
        super().__init__()
        self.failed = 0

    def filter(self, record) -> bool:
        if str(record.msg).startswith("Failed experiment: Return value must be float-castable"):
            self.failed += 1
            record.msg, record.args = "a trial failed (refused or diverged: see its error line)", ()
        return True


if OptunaSweeper is not None:

    class OptunaSearch(OptunaSweeper):
        """OptunaSweeper with one-line failures (see the module docstring)."""

        def sweep(self, arguments) -> None:
            failed = _FailedTrials()
            logging.getLogger(_PLUGIN_LOG).addFilter(failed)
            try:
                super().sweep(arguments)
            except ValueError as exc:
                if "No trials are completed yet" not in str(exc):
                    raise
                print(f"error: no trial of the study succeeded ({failed.failed} failed); see "
                      "their error lines, then fix or narrow the search (hydra.sweeper.params)",
                      file=sys.stderr, flush=True)  # fmt: skip
            finally:
                logging.getLogger(_PLUGIN_LOG).removeFilter(failed)
