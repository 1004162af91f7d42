"""The installed program: `mlrefresh ...` (a console script) and `python -m mlrefresh ...`, the
same Hydra app as a checkout's scripts/train.py, on the configs shipped in the package
(`pkg://mlrefresh.configs`). Outputs go to `outputs/` under the current folder, as there.

Example:
    mlrefresh loss=square model=logistic
    mlrefresh -m hydra/launcher=stacked seed=1,2
    mlrefresh --config-dir my_configs experiment=mine      # a folder of your own experiments
    python -m mlrefresh --help
"""

import os
import signal
import sys

__all__ = ["cli", "main"]


def main() -> int:
    """Run the app on sys.argv; the exit code (0, or the worst job's)."""
    stopped = []  # SIGINT/SIGTERM while the imports run: launch() honours them (scripts/train.py)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: stopped.append(signum))
    import hydra

    from mlrefresh.runs.cli import launch, run_job, task

    @hydra.main(version_base="1.3", config_path="pkg://mlrefresh.configs", config_name="train")
    @task  # the project's own job (the stacked launcher may train several as one stack)
    def app(cfg) -> float | None:
        return run_job(cfg)

    name = os.path.basename(sys.argv[0])
    return launch(app, "mlrefresh" if name == "mlrefresh" else "python -m mlrefresh", stopped)


def cli() -> None:
    """The console script's entry point."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
