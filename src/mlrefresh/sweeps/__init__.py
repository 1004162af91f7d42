"""sweeps/: what a Hydra multirun adds to single runs: the sweep summary, launcher settings and
their checks, the Optuna search space, and stacking (M jobs trained as one stacked model).

May import: the core (mlrefresh.*), data/, runs/ (a sweep's jobs are runs) and plots/ (the
sweep's HParams table for TensorBoard). The core never imports sweeps/.

Example:
    >>> from mlrefresh.sweeps.launchers import job_threads
    >>> job_threads({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher."
    ...              "JoblibLauncher", "n_jobs": 2}, cores=8, env={})
    4
"""
