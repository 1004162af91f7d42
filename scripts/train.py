"""Train a model from the Hydra configs in configs/; a thin entry point around train(cfg).

python scripts/train.py                                  # logistic regression on blobs
python scripts/train.py loss=square model=logistic
python scripts/train.py model=softmax dataset=fashion_mnist
python scripts/train.py -m loss=square,ce model=logistic,softmax dataset=blobs,xor
"""

import signal
import sys

_stopped = []  # SIGINT/SIGTERM while the imports run: honoured by launch() once they are done


def _starting(signum, frame):  # until launch() installs its own handlers (mlrefresh.runs.signals)
    _stopped.append(signum)  # (no KeyboardInterrupt inside torch's C++ import: it aborted)


for _signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_signum, _starting)
try:
    import hydra

    from mlrefresh.runs.cli import launch, run_job, task
except ModuleNotFoundError as exc:  # run with a Python that lacks the project's packages
    print(
        f"error: {exc.name} is not installed for {sys.executable}; run `make train` once, then "
        "use .venv/bin/python scripts/train.py (or `source .venv/bin/activate` first)",
        file=sys.stderr,
    )
    sys.exit(2)


@hydra.main(version_base="1.3", config_path="../src/mlrefresh/configs", config_name="train")
@task  # the project's own job (the stacked launcher may train several as one stack)
def main(cfg) -> float | None:
    return run_job(cfg)  # the final validation accuracy, for a sweeper to optimise


if __name__ == "__main__":
    sys.exit(launch(main, starting=_stopped))
