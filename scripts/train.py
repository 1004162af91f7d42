"""Train a model from the Hydra configs in configs/; a thin entry point around train(cfg).

python scripts/train.py                                  # logistic regression on blobs
python scripts/train.py loss=square model=logistic
python scripts/train.py model=softmax dataset=fashion_mnist
python scripts/train.py -m loss=square,ce model=logistic,softmax dataset=blobs,xor
"""

import sys

import hydra

from mlrefresh.cli import exit_status, run_job


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg) -> float | None:
    return run_job(cfg)  # the final validation accuracy, for a sweeper to optimise


if __name__ == "__main__":
    main()
    sys.exit(exit_status())
