"""Benchmarks: our code against hand-written PyTorch, side by side in one process.

Prints tables of times and ratios; it is not a test and asserts nothing about speed.

    python scripts/bench.py                   # every section
    python scripts/bench.py losses data       # some sections
    python scripts/bench.py loop --device cuda

Sections:
    losses   forward + backward of each custom Function against PyTorch's own (N=128, 60000)
    data     loading the full Fashion-MNIST from its gz files into tensors
"""

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from mlrefresh.losses import bernoulli_ce, softmax_ce, square_loss

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _compare_us(fns, rounds=5, min_run_time=0.1):
    """Best-of-rounds median time of each function, the rounds interleaved so that a noisy
    neighbour on a shared machine slows every candidate alike."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            timer = Timer(stmt="fn()", globals={"fn": fn})
            best[i] = min(best[i], timer.blocked_autorange(min_run_time=min_run_time).median * 1e6)
    return best


def _fwd_bwd(loss_fn, x, t):
    def step():
        (g,) = torch.autograd.grad(loss_fn(x, t), x)
        return g

    return step


def bench_losses(device):
    k = 10
    threads = torch.get_num_threads()
    print(f"\n## losses: forward + backward, K={k}, float32, {device}, {threads} threads")
    print(f"{'loss':<14}{'N':>7}{'ours us':>10}{'ours+check':>12}{'torch us':>10}{'ratio':>7}")
    for n in (128, 60000):
        gen = torch.Generator().manual_seed(0)
        z_k = torch.randn(n, k, generator=gen).to(device).requires_grad_()
        y_k = torch.rand(n, k, generator=gen).to(device).requires_grad_()
        z_1 = torch.randn(n, generator=gen).to(device).requires_grad_()
        classes = torch.randint(0, k, (n,), generator=gen).to(device)
        onehot = F.one_hot(classes, k).float()
        bits = torch.randint(0, 2, (n,), generator=gen).float().to(device)
        mse = lambda y, t: 0.5 * F.mse_loss(y, t, reduction="sum") / y.shape[0]  # noqa: E731
        rows = [
            ("square [N,K]", square_loss, y_k, onehot, mse),
            ("bernoulli [N]", bernoulli_ce, z_1, bits, F.binary_cross_entropy_with_logits),
            ("softmax [N,K]", softmax_ce, z_k, classes, F.cross_entropy),
        ]
        for name, ours, x, t, theirs in rows:
            fast, checked, ref = _compare_us(
                [
                    _fwd_bwd(lambda a, b, f=ours: f(a, b, check=False), x, t),
                    _fwd_bwd(ours, x, t),
                    _fwd_bwd(theirs, x, t),
                ]
            )
            print(f"{name:<14}{n:>7}{fast:>10.1f}{checked:>12.1f}{ref:>10.1f}{fast / ref:>7.2f}")
    print("ratio = ours (check=False, as the training loop calls it) / torch")


def bench_data(device):
    from mlrefresh.data import load_dataset

    print(f"\n## data: full Fashion-MNIST from {FASHION_DIR} (gz) into tensors on {device}")
    if not os.path.exists(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")):
        print("skipped: apt-get install dataset-fashion-mnist")
        return
    times = []
    for _ in range(3):
        start = time.perf_counter()
        ds = load_dataset("fashion_mnist", device=device, download=False)
        if ds.x_train.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    print(f"load_dataset('fashion_mnist'): best {min(times):.2f} s, worst {max(times):.2f} s of 3")
    print(f"  {ds.description}")


SECTIONS = {"losses": bench_losses, "data": bench_data}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench: --device cuda but CUDA is not available; use --device cpu")
    print(f"torch {torch.__version__}, device {device}")
    for name in args.sections or SECTIONS:
        SECTIONS[name](device)


if __name__ == "__main__":
    main()
