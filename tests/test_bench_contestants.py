"""The contestants `scripts/bench.py loop` and `stacked` time against the project
(scripts/contestants.py) solve the same problem: trained the same epochs, they reach the
hand-written loop's accuracy, or their ratios would compare unlike things."""

import os
import sys

import pytest

from helpers import ROOT

FASHION = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(FASHION), reason="needs Debian's dataset-fashion-mnist")
def test_the_benchmarks_contestants_reach_the_hand_loops_accuracy():
    import torch

    from mlrefresh.data import load_dataset

    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import bench
        from contestants import fused_reference, jax_scan, jax_stacked, lean_loop
    finally:
        sys.path.remove(os.path.join(ROOT, "scripts"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = load_dataset("fashion_mnist", download=False)
        _, hand = bench._hand(ds, "cpu", 2)
        ran, why = {}, []
        for make in (lean_loop, fused_reference, jax_scan):
            run = make(ds, 2)
            if isinstance(run, str):  # no compiler (or ninja), or no jax (the bench extra)
                why.append(run)
            else:
                ran[make.__name__] = run()[1]
        stacked = jax_stacked(ds, 2)  # 3 lr x 4 seeds: the lr 0.1 jobs are the hand loop's
        if not isinstance(stacked, str):
            for seed, accuracy in enumerate(stacked()[1][4:8]):
                ran[f"jax_stacked, lr 0.1, seed {seed + 1}"] = accuracy
    finally:
        torch.set_num_threads(threads)
    if not ran:
        pytest.skip("; ".join(why))
    assert 0.79 <= hand <= 0.86
    for name, accuracy in ran.items():  # SGD at lr 0.1, momentum 0.9: the last epoch's
        assert abs(accuracy - hand) <= 0.035, (name, accuracy, hand)  # accuracy moves +-1.5
