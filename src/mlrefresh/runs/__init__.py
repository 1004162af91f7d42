"""runs/: what one run owns around the lecture core: its folder, checkpoints, resume, signals,
the command line and its messages.

Owns: run folders and who may write them (rundir, locks), last.pt/model.pt/metrics.json
(checkpoint, resume), a job's files and event writer (jobs), Ctrl-C/SIGTERM (signals), the
`scripts/train.py` / `mlrefresh` entry point (cli) and its one-line errors (console), the same
in-process for Python (api: mlrefresh.run, mlrefresh.sweep), reading a run's records
back (records), and what one command learns while it runs (session: the one object the parts
Hydra calls back share; signals keeps the signal handler's flag, which is the process's).

May import: the core (mlrefresh.*), data/, plots/ (the event-file writer) and sweeps/ (the
sweep summary and launcher checks that the command line runs). The core never imports runs/.

Example:
    >>> from mlrefresh.runs.checkpoint import load_last  # doctest: +SKIP
    >>> load_last("outputs/runs/2026-12-02/10-00-00")["epoch"]  # doctest: +SKIP
    5
"""
