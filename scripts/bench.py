"""Benchmarks: our code against hand-written PyTorch, side by side in one process.

Prints tables of times and ratios; it is not a test and asserts nothing about speed.

    python scripts/bench.py                   # every section
    python scripts/bench.py losses data       # some sections
    python scripts/bench.py loop --device cuda

Sections:
    losses   forward + backward of each custom Function against PyTorch's own (N=128, 60000)
    data     loading the full Fashion-MNIST from its gz files into tensors
    loop     ms and CPU ms per epoch on one core (every thread pinned; --no-pin: not):
             train(cfg) vs a hand-written in-memory loop, a DataLoader loop, a lean eager
             loop without diagnostics, JAX (a jitted lax.scan epoch; pip install jax) and a
             fused C++ step (the reference of this machine's limit, contestants.py); then the
             epoch's FLOPs and bytes, the GEMM and copy rates, the floor they give
    parts    the project's Fashion-MNIST epoch part by part (the step's calls, the validation
             forward, the metrics), one core; then the step's cost beyond its arithmetic (tiny
             tensors: train_epoch's steps against the same calls inline)
    accuracy time to accuracy on Fashion-MNIST against scikit-learn's LogisticRegression
    startup  `python scripts/train.py` end to end against bare imports
    sweep    16 Fashion-MNIST jobs against one run: basic and joblib launchers
    stacked  12 and 16 Fashion-MNIST jobs under hydra/launcher=stacked against one run, and
             the 12 as a JAX vmap on one core (--busy N: beside N processes that keep a core
             busy each)
    resume   a 16-job sweep killed half-way, resumed by the same command, against a fresh one
"""

import argparse
import contextlib
import functools
import glob
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from mlrefresh.losses import bernoulli_ce, softmax_ce, square_loss

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compare_us(fns, rounds=5, min_run_time=0.1):
    """Best-of-rounds median time of each function, the rounds interleaved so that a noisy
    neighbour on a shared machine slows every candidate alike."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
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
    _backward_alone(device, k)


def _backward_alone(device, k, n=128):
    """The written-out step's call of a loss Function's backward (loss_plumbing.backward_alone)
    against the same backward reached through torch.autograd.grad (forward, graph, backward)."""
    from mlrefresh.loss_plumbing import backward_alone
    from mlrefresh.losses import BernoulliCE, SoftmaxCE

    gen = torch.Generator().manual_seed(0)
    one = torch.ones((), device=device)
    cases = [("bernoulli [N]", BernoulliCE, bernoulli_ce, torch.randn(n, generator=gen),
              torch.randint(0, 2, (n,), generator=gen).float()),
             ("softmax [N,K]", SoftmaxCE, softmax_ce, torch.randn(n, k, generator=gen),
              torch.randint(0, k, (n,), generator=gen))]  # fmt: skip
    print(f"{'dL/dz only':<14}{'N':>7}{'alone us':>10}{'autograd us':>12}{'ratio':>7}")
    for name, function, loss, z, t in cases:
        z, t = z.to(device), t.to(device)
        alone = functools.partial(backward_alone, function, z, t, one)
        unchecked = functools.partial(loss, check=False)
        through = _fwd_bwd(unchecked, z.clone().requires_grad_(), t)
        alone, through = _compare_us([alone, through])
        print(f"{name:<14}{n:>7}{alone:>10.1f}{through:>12.1f}{alone / through:>7.2f}")


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


def _fashion_available():
    if os.path.exists(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")):
        return True
    print("skipped: needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    return False


def _compose(overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(os.path.join(ROOT, "configs"), version_base="1.3"):
        return compose("train", overrides=overrides)


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _hand_written_epoch(model, opt, x, y, x_val, y_val, batch_size, dataloader=None):
    """The loop people write: shuffled batches, F.cross_entropy, SGD; the epoch's mean loss
    accumulated on the device, validation accuracy read once per epoch."""
    total = torch.zeros((), device=x.device)
    if dataloader is None:
        perm = torch.randperm(len(x), device=x.device)
        batches = ((x[i], y[i]) for i in perm.split(batch_size))
    else:
        batches = ((xb.to(x.device), yb.to(x.device)) for xb, yb in dataloader)
    for xb, yb in batches:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * len(xb)
    with torch.no_grad():
        accuracy = (model(x_val).argmax(1) == y_val).float().mean()
    return (total / len(x)).item(), accuracy.item()


def _hand(ds, device, epochs, dataloader=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(784, 10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        _, accuracy = _hand_written_epoch(model, opt, ds.x_train, ds.y_train, ds.x_val,
                                          ds.y_val, 128, dataloader)  # fmt: skip
    return time.perf_counter() - start, accuracy


def _contestants(ds, device, epochs, overrides):
    """{name: a function of no arguments returning (seconds, validation accuracy)}: the project,
    the hand loops, and where they can run JAX and the fused C++ reference (contestants.py)."""
    import tempfile

    from torch.utils.data import DataLoader, TensorDataset

    from mlrefresh.runs.run import train

    def project(config):
        with tempfile.TemporaryDirectory() as run_dir:  # the epochs, not the data loading
            metrics = train(config, run_dir=run_dir)
        return metrics["train_seconds"], metrics["accuracy/val"]

    cfg = _compose(overrides + [f"trainer.epochs={epochs}"])
    loader = DataLoader(TensorDataset(ds.x_train.cpu(), ds.y_train.cpu()), batch_size=128,
                        shuffle=True)  # fmt: skip
    found = {
        "this project: train(cfg)": lambda: project(cfg),
        "hand-written PyTorch loop": lambda: _hand(ds, device, epochs),
        "DataLoader(TensorDataset)": lambda: _hand(ds, device, epochs, loader),
    }
    if device == "cuda":  # the step as a CUDA graph (the default) against eager steps
        eager = _compose(overrides + [f"trainer.epochs={epochs}", "trainer.cuda_graph=false"])
        found["train(cfg), no CUDA graph"] = lambda: project(eager)
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from contestants import fused_reference, jax_scan, lean_loop

        for name, make in (("lean eager loop, no diagnostics", lean_loop),
                           ("JAX jit(lax.scan) epoch", jax_scan),
                           ("fused C++ step (reference)", fused_reference)):  # fmt: skip
            made = make(ds, epochs)
            if isinstance(made, str):
                print(f"skipped: {made}")
            else:
                found[name] = made
    return found


def _one_core():
    """Pin every thread of this process (and the threads they start) to one CPU, so that each
    contestant has one core: torch at one thread has, but JAX's XLA runs work on threads of its
    own (at intra_op_parallelism_threads=1 too: 1.5x its wall time in CPU time on 2 cores).
    Returns a function that gives the threads their CPUs back, and the core's name."""
    if not hasattr(os, "sched_setaffinity"):
        return (lambda: None), "not pinned (no sched_setaffinity here)"
    cpus = os.sched_getaffinity(0)
    core = max(cpus)  # not CPU 0, where the interrupts go
    tasks = [int(t) for t in os.listdir("/proc/self/task")]
    for task in tasks:
        os.sched_setaffinity(task, {core})

    def restore():
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(task), cpus)

    return restore, f"every thread pinned to CPU {core}"


def bench_loop(device, epochs=5, rounds=10, pin=True):
    """Fashion-MNIST softmax regression, batch 128, SGD(0.1, momentum 0.9), validation each
    epoch, on one core: each contestant's ms and CPU ms per epoch, median of interleaved
    rounds (min in brackets), its ratio to the project, and the accuracy it reached."""
    import statistics

    from mlrefresh.data import load_dataset

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    print(f"\n## loop: Fashion-MNIST, softmax + CE, batch 128, {epochs} epochs, SGD(0.1, m=0.9), "
          "one thread")  # fmt: skip
    if not _fashion_available():
        return
    restore, pinned = _one_core() if pin and device == "cpu" else ((lambda: None), "not pinned")
    print(f"one core: {pinned}")
    overrides = ["model=softmax", "dataset=fashion_mnist", f"device={device}",
                 "optim.schedule=constant", "trainer.threads=1"]  # fmt: skip
    ds = load_dataset("fashion_mnist", device=device, download=False)
    contestants = _contestants(ds, device, epochs, overrides)
    _hand(ds, device, 1)  # warm-up: the first optimizer step imports torch._dynamo (about 1 s)
    wall, cpu, accuracy = ({name: [] for name in contestants} for _ in range(3))
    for _ in range(rounds):
        for name, run in contestants.items():
            start = time.process_time()
            seconds, accuracy[name] = run()
            wall[name].append(seconds / epochs * 1000)
            cpu[name].append((time.process_time() - start) / epochs * 1000)
    median = {name: statistics.median(ms) for name, ms in wall.items()}
    base = median["this project: train(cfg)"]
    # each round's time over the project's in the same round: a slow spell of the machine that
    # lasts longer than a round cancels (the medians of the columns before do not pair them)
    paired = {name: sorted(ms / p for ms, p in zip(wall[name], wall["this project: train(cfg)"]))
              for name in contestants}  # fmt: skip
    print(f"{'contestant':<30}{'ms/epoch':>16}{'CPU ms/epoch':>16}{'vs project':>12}"
          f"{'paired':>18}{'val acc':>9}")  # fmt: skip
    for name in contestants:
        times = f"{median[name]:.0f} ({min(wall[name]):.0f})"
        cpus = f"{statistics.median(cpu[name]):.0f} ({min(cpu[name]):.0f})"
        pair = paired[name]
        pair = f"{statistics.median(pair):.2f} ({pair[0]:.2f}-{pair[-1]:.2f})"
        print(f"{name:<30}{times:>16}{cpus:>16}{median[name] / base:>12.2f}{pair:>18}"
              f"{accuracy[name]:>9.4f}")  # fmt: skip
    print(f"median of {rounds} interleaved rounds (min); paired: each round's time over the "
          "project's in that round, median (min-max); the project's time is its epochs "
          "(train_seconds: per-epoch validation and diagnostics included, TensorBoard on); CPU "
          "ms is the process's, all threads; JAX compiled before timing, the C++ reference "
          "built before it (torch.utils.cpp_extension)")  # fmt: skip
    _roofline(ds, median, device)
    torch.set_num_threads(threads)
    restore()


def _roofline(ds, best, device, batch=128):
    """What an epoch costs the machine: its FLOPs and bytes, this machine's GEMM and copy rates
    at the step's shapes and at its best, the floor those give, and the fraction of it each
    loop reaches (its floor / its time). train(cfg) reads the training pixels as bytes
    (Dataset.train_bytes), the hand loops as float32: each loop's floor counts what it reads."""
    n, d = ds.x_train.shape
    k, n_val = ds.num_classes, len(ds.x_val)
    flops = 4 * n * d * k + 2 * n_val * d * k  # forward + weight gradient; validation forward
    floats = (n + n_val) * d * 4  # every pixel read once an epoch, as float32
    as_bytes = n * d + n_val * d * 4  # the training pixels as uint8, validation as float32
    x, w = ds.x_train[:batch], torch.randn(k, d, device=device)
    g = torch.randn(batch, k, device=device)
    big = torch.randn(1024, 1024, device=device)
    copy_src = torch.randn(16 * 2**20, device=device)  # 64 MB: beyond the caches
    idx = torch.randperm(n, device=device)[:batch]
    forward_us, grad_us, big_us, copy_us, gather_us = _compare_us(
        [lambda: x @ w.t(), lambda: g.t() @ x, lambda: big @ big, copy_src.clone,
         lambda: ds.x_train[idx]], rounds=3)  # fmt: skip
    step_rate = 2 * batch * d * k / forward_us / 1e3  # GFLOP/s
    grad_rate = 2 * batch * d * k / grad_us / 1e3
    best_rate = 2 * 1024**3 / big_us / 1e3
    copy_rate = 2 * copy_src.numel() * 4 / copy_us / 1e3  # GB/s, read + write
    gemm_ms = (flops / 2 / step_rate + flops / 2 / grad_rate) / 1e6
    bytes_ms, floats_ms = (gemm_ms + size / copy_rate / 1e6 for size in (as_bytes, floats))
    reads_bytes = ("train(cfg)", "lean eager", "fused C++")  # the training pixels as uint8
    floor = {name: bytes_ms if any(b in name for b in reads_bytes) else floats_ms
             for name in best}  # fmt: skip
    best_ms = flops / best_rate / 1e6 + as_bytes / copy_rate / 1e6
    print(f"an epoch: {flops / 1e9:.2f} GFLOP; pixels read {floats / 1e6:.0f} MB as float32, "
          f"{as_bytes / 1e6:.0f} MB with the training pixels as bytes (train(cfg))")  # fmt: skip
    print(f"this machine ({torch.get_num_threads()} threads): GEMM {step_rate:.1f} GFLOP/s at "
          f"the forward's [{batch},{d}]x[{d},{k}], {grad_rate:.1f} at the weight gradient's, "
          f"{best_rate:.1f} at 1024^3; copy {copy_rate:.1f} GB/s; a {batch}-row gather "
          f"{gather_us:.0f} us")  # fmt: skip
    print(f"a floor from torch's GEMM rates at the step's shapes (measured above, one matmul "
          f"call each) plus the copy: {bytes_ms:.0f} ms reading bytes, {floats_ms:.0f} ms "
          f"reading float32; at the best GEMM rate {best_ms:.0f} ms; fraction of it each loop "
          "reaches: " + ", ".join(f"{name} {floor[name] / ms:.2f}"
                                  for name, ms in best.items()))  # fmt: skip
    fused = next((ms for name, ms in best.items() if "fused C++" in name), None)
    if fused is not None:  # measured: what one fused pass over the rows costs here
        where = "below it: that floor is no floor" if fused < bytes_ms else "above it"
        print(f"the measured limit: the fused C++ reference's {fused:.0f} ms an epoch, "
              f"{fused / bytes_ms:.2f} of that floor ({where})")  # fmt: skip


def bench_parts(device, epochs=5):
    """Where the project's epoch goes, on one core: perf_counter around each part of
    epoch.linear_step (the same calls, in its order), then the validation forward and the
    epoch's metrics; median of `epochs` epochs. The epoch's end (TensorBoard, last.pt) is not
    here: `python -m cProfile scripts/train.py ...` shows it."""
    import statistics

    from mlrefresh.data import load_dataset
    from mlrefresh.epoch import batch, grad_norms, rows, train_epoch
    from mlrefresh.models import affine
    from mlrefresh.train import Training

    print("\n## parts: one Fashion-MNIST epoch of train(cfg)'s step, part by part, one core")
    if not _fashion_available():
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    restore, pinned = _one_core() if device == "cpu" else ((lambda: None), "not pinned")
    ds = load_dataset("fashion_mnist", device=device, download=False)
    run = Training(_compose(["model=softmax", "dataset=fashion_mnist", f"device={device}",
                             "optim.schedule=constant", "trainer.threads=1"]), ds)  # fmt: skip
    model, objective, x = run.model, run.objective, ds.step_inputs
    weight, bias, one = model.linear.weight, model.linear.bias, torch.ones((), device=device)
    w, b = weight.detach(), bias.detach()  # as linear_step: views of the optimizer's buffer
    grad_w, grad_b = weight.grad, bias.grad  # views of its gradients' buffer (flatten)
    ms, epoch = {}, [0]

    @contextlib.contextmanager
    def part(name, step=True):  # a part of the step: in inference mode, as train_epoch runs it
        with torch.inference_mode(step):
            _sync(device)
            start = time.perf_counter()
            yield
            _sync(device)
        ms.setdefault(name, [0.0] * epochs)[epoch[0]] += (time.perf_counter() - start) * 1e3

    with torch.no_grad():
        for epoch[0] in range(epochs):
            for idx in run.perm(len(x), x.device).split(128):
                with part("gather and convert the bytes"):
                    inputs = batch(x, idx)
                with part("forward (models.affine)"):
                    z = affine(inputs, w, b)
                with part("targets"):
                    t = rows(run.t_train, idx)
                with part("dL/dz (the Function's backward)"):
                    dz = objective.logit_grad(z, t, one)
                with part("dW, db (into the gradients' buffer)"):
                    torch.mm(dz.t(), inputs, out=grad_w)
                    torch.sum(dz, 0, out=grad_b)
                with part("gradient norms"):
                    grad_norms([weight, bias])
                with part("SGD update (one flat buffer)"):
                    run.optimizer.step()
            perm = run.perm(len(x), x.device)
            with part("(all of them: train_epoch's steps)", step=False):
                seen = train_epoch(run.step, run.schedule, run.t_train, 128, perm, 0)
            with part("validation forward", step=False):
                z_val = model(ds.x_val)
            with part("epoch metrics", step=False):
                [float(v) for v in run.metrics(seen, z_val).values()]
    for name, values in ms.items():
        print(f"{name:<42}{statistics.median(values):>8.1f} ms an epoch (min {min(values):.1f})")
    print(f"{pinned}; median of {epochs} epochs")
    project, inline = _beyond_arithmetic(device)
    print(
        f"beyond the arithmetic (4096 x 4 bytes, batch 8, {INLINE_CALLS} calls a step whose "
        f"kernels do nearly nothing; median of 9 interleaved epochs): train_epoch's steps "
        f"{project:.0f} us a step, the same calls inline {inline:.0f}: about "
        f"{inline / INLINE_CALLS:.1f} us a call, and {project - inline:.0f} us a step of "
        "Python between them (the helpers, the Function's context, the optimizer's step)"
    )
    torch.set_num_threads(threads)
    restore()


INLINE_CALLS = 20  # the calls of the inline step below, views (t) included


def _beyond_arithmetic(device, n=4096, d=4, k=3, batch=8, rounds=9):
    """(us a step of epoch.linear_step in train_epoch, us a step of the same calls written
    inline), at shapes so small that the kernels do nearly nothing: what a step costs beyond
    its arithmetic, and the part of it that is the project's Python."""
    import statistics

    from mlrefresh.epoch import linear_step, train_epoch
    from mlrefresh.models import build_model
    from mlrefresh.objective import Objective
    from mlrefresh.optim import build_optimizer

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, d), dtype=torch.uint8, generator=gen).to(device)
    y = torch.randint(0, k, (n,), generator=gen).to(device)
    model = build_model("softmax", d, k).to(device)
    optim = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "constant"}
    optimizer, schedule = build_optimizer(optim, model.parameters(), 1)
    step = linear_step(model, Objective("ce", model), optimizer, x, y)
    flat, grad, velocity = (torch.zeros(k * d + k, device=device) for _ in range(3))
    w, b, gw, gb = flat[: k * d].view(k, d), flat[k * d :], grad[: k * d].view(k, d), grad[k * d :]
    one, byte = torch.ones((), device=device), torch.tensor(255.0, device=device)
    eye = torch.eye(k, device=device)

    def inline(perm):
        logits, norms = [], []
        with torch.inference_mode():
            for idx in perm.split(batch):
                inputs = torch.div(torch.index_select(x, 0, idx), byte)
                z = torch.mm(w, inputs.t()).t() + b
                t = torch.index_select(y, 0, idx)
                dz = (torch.softmax(z, 1) - torch.index_select(eye, 0, t)) * (one / z.shape[0])
                torch.mm(dz.t(), inputs, out=gw)
                torch.sum(dz, 0, out=gb)
                norms.append([torch.linalg.vector_norm(gw), torch.linalg.vector_norm(gb)])
                velocity.mul_(0.9).add_(grad)
                flat.add_(velocity, alpha=-0.1)
                logits.append(z)
        return torch.cat(logits)

    contestants = {"project": lambda p: train_epoch(step, schedule, y, batch, p, 0),
                   "inline": inline}  # fmt: skip
    us = {name: [] for name in contestants}
    for _ in range(rounds):
        for name, run in contestants.items():
            perm = torch.randperm(n, device=device)
            _sync(device)
            start = time.perf_counter()
            run(perm)
            _sync(device)
            us[name].append((time.perf_counter() - start) * 1e6 / (n // batch))
    return statistics.median(us["project"]), statistics.median(us["inline"])


def bench_accuracy(device):
    from mlrefresh.data import load_dataset
    from mlrefresh.runs.run import train

    print("\n## accuracy: time to accuracy on Fashion-MNIST (softmax regression, defaults)")
    if not _fashion_available():
        return
    import tempfile

    cfg = _compose(["model=softmax", "dataset=fashion_mnist", f"device={device}"])
    with tempfile.TemporaryDirectory() as run_dir:
        ours = train(cfg, run_dir=run_dir)
    print(f"{'method':<44}{'seconds':>9}{'val acc':>9}")
    print(
        f"{'mlrefresh train(cfg) (5 epochs SGD, cosine)':<44}{ours['train_seconds']:>9.2f}"
        f"{ours['accuracy/val']:>9.2%}"
    )
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        print("scikit-learn: skipped (pip install -e '.[bench]')")
        return
    import warnings

    ds = load_dataset("fashion_mnist", download=False)
    x, y = ds.x_train.cpu().numpy(), ds.y_train.cpu().numpy()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs stops at max_iter=100 without converging
        clf = LogisticRegression(max_iter=100).fit(x, y)
    seconds = time.perf_counter() - start
    accuracy = (clf.predict(ds.x_val.cpu().numpy()) == ds.y_val.cpu().numpy()).mean()
    print(f"{'scikit-learn LogisticRegression (lbfgs)':<44}{seconds:>9.2f}{accuracy:>9.2%}")
    print(
        f"ratio mlrefresh / scikit-learn: {ours['train_seconds'] / seconds:.2f} "
        "(training only; both read the same in-memory data)"
    )


def _best_wall(cmd, rounds, cwd):
    """Best wall time of a command (a list, or a function of the round giving one)."""
    import subprocess

    best = float("inf")
    for i in range(rounds):
        start = time.perf_counter()
        subprocess.run(cmd(i) if callable(cmd) else cmd, cwd=cwd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


# The script people write for the same 5 epochs: read the gz files, then _hand_written_epoch's
# loop (x[idx] per step, F.cross_entropy, torch.optim.SGD, validation accuracy each epoch).
HAND_SCRIPT = """
import gzip, sys, numpy as np, torch, torch.nn.functional as F
def read(name, offset):
    with gzip.open(f"{sys.argv[1]}/{name}-ubyte.gz") as f:
        return torch.from_numpy(np.frombuffer(f.read(), np.uint8, offset=offset).copy())
x, x_val = (read(f"{n}-images-idx3", 16).view(-1, 784).float() / 255 for n in ("train", "t10k"))
y, y_val = (read(n, 8).long() for n in ("train-labels-idx1", "t10k-labels-idx1"))
torch.manual_seed(0)
model = torch.nn.Linear(784, 10)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for epoch in range(5):
    for idx in torch.randperm(len(x)).split(128):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        print(epoch + 1, (model(x_val).argmax(1) == y_val).float().mean().item())
"""


def bench_startup(device, rounds=3):
    """Start-up: the default run against bare imports; a 5-epoch Fashion-MNIST run, end to end,
    against the hand-written script of the same epochs (HAND_SCRIPT), rounds interleaved."""
    import tempfile

    print(f"\n## startup: commands end to end, best of {rounds} interleaved rounds")
    train_py = os.path.join(ROOT, "scripts", "train.py")
    commands = {
        "bare imports (torch, hydra, SummaryWriter)": [
            sys.executable, "-c", "import torch, hydra; from torch.utils.tensorboard import "
            "SummaryWriter"],
        "python scripts/train.py (20 epochs, blobs)": [sys.executable, train_py,
                                                       f"device={device}"],
    }  # fmt: skip
    if _fashion_available():
        commands["train.py, Fashion-MNIST, 5 epochs"] = [
            sys.executable, train_py, f"device={device}", "model=softmax",
            "dataset=fashion_mnist", "dataset.download=false", "trainer.epochs=5",
            "optim.schedule=constant"]  # fmt: skip
        commands["hand-written script, the same 5 epochs"] = [
            sys.executable,
            "-c",
            HAND_SCRIPT,
            FASHION_DIR,
        ]
    best = dict.fromkeys(commands, float("inf"))
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            for name, cmd in commands.items():
                folder = [f"hydra.run.dir={tmp}/{i}{len(name)}"] if cmd[1] == train_py else []
                best[name] = min(best[name], _best_wall(cmd + folder, 1, ROOT))
    for name, seconds in best.items():
        print(f"{name:<44}{seconds:>7.2f} s")
    if "hand-written script, the same 5 epochs" in best:
        ratio = best["train.py, Fashion-MNIST, 5 epochs"] / best[
            "hand-written script, the same 5 epochs"]  # fmt: skip
        print(f"5-epoch run / hand-written script: {ratio:.2f} (each at its default threads)")


def _fashion_jobs(section, what, device):
    """(train.py, the overrides of a Fashion-MNIST softmax job), or (None, None) without the
    data set."""
    if not _fashion_available():
        print(f"\n## {section}: skipped (Fashion-MNIST is not installed)")
        return None, None
    print(f"\n## {section}: {what} against one run")
    common = ["model=softmax", "dataset=fashion_mnist", "dataset.download=false",
              "trainer.epochs=5", f"device={device}"]  # fmt: skip
    return os.path.join(ROOT, "scripts", "train.py"), common


def bench_sweep(device, rounds=1):
    """The sweeps issue's figure: 16 Fashion-MNIST jobs (4 learning rates x 4 seeds, 5 epochs)
    against one such run, end to end, under the basic launcher and under joblib."""
    import tempfile

    script, common = _fashion_jobs("sweep", "16 Fashion-MNIST jobs (4 lr x 4 seeds, 5 epochs)",
                                   device)  # fmt: skip
    if script is None:
        return
    sweep = ["optim.lr=0.03,0.1,0.3,1", "seed=1,2,3,4"]
    with tempfile.TemporaryDirectory() as tmp:
        one = _best_wall([sys.executable, script, *common, f"hydra.run.dir={tmp}/one"], 1, ROOT)
        print(f"one run                     {one:6.2f} s")
        for name, extra in (("basic", []), ("joblib", ["hydra/launcher=joblib"])):
            cmd = [sys.executable, script, "-m", *common, *sweep, *extra,
                   f"hydra.sweep.dir={tmp}/{name}"]  # fmt: skip
            wall = _best_wall(cmd, rounds, ROOT)
            print(f"16 jobs, {name:7s} launcher  {wall:6.2f} s   ratio {wall / one:.2f}")


def bench_resume(device):
    """The sweep-resume figure: 16 Fashion-MNIST jobs (4 lr x 4 seeds, 5 epochs) run through,
    against the same sweep SIGKILLed once 8 jobs finished and then resumed by the same command:
    the resume's wall time, and the two parts together, as fractions of the fresh sweep's."""
    import signal
    import subprocess
    import tempfile

    script, common = _fashion_jobs("resume", "a 16-job sweep killed half-way and resumed",
                                   device)  # fmt: skip
    if script is None:
        return
    sweep = ["-m", *common, "optim.lr=0.03,0.1,0.3,1", "seed=1,2,3,4"]
    with tempfile.TemporaryDirectory() as tmp:
        fresh = _best_wall([sys.executable, script, *sweep, f"hydra.sweep.dir={tmp}/fresh"], 1,
                           ROOT)  # fmt: skip
        cmd = [sys.executable, script, *sweep, f"hydra.sweep.dir={tmp}/killed"]
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        while len(glob.glob(f"{tmp}/killed/*/model.pt")) < 8 and child.poll() is None:
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        before = time.perf_counter() - start
        resumed = _best_wall(cmd, 1, ROOT)
    print(f"fresh sweep                          {fresh:6.2f} s")
    print(f"killed after 8 of 16 jobs            {before:6.2f} s")
    print(f"the same command again (resumes)     {resumed:6.2f} s   {resumed / fresh:.2f} of fresh")
    print(f"both parts                           {before + resumed:6.2f} s   "
          f"{(before + resumed) / fresh:.2f} of fresh")  # fmt: skip


def _train_seconds(folder):
    import json

    with open(glob.glob(os.path.join(folder, "*", "metrics.json"))[0]) as f:
        return json.load(f)["train_seconds"]


def _busy(n):
    """n processes that keep a core busy each (another user's work), and a function that ends
    them: the figures of a shared machine."""
    import subprocess

    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]

    def stop():
        for loop in loops:
            loop.kill()
            loop.wait()

    return stop


def bench_stacked(device, rounds=3, busy=0):
    """The stacked launcher's figure: 12 Fashion-MNIST jobs (3 lr x 4 seeds) and 16 (4 x 4),
    5 epochs each, trained as one stack, against one such run; end to end and the training
    alone (train_seconds: the stack's epochs, the run's epochs). Rounds interleaved. The 12 jobs
    twice: at the stack's default threads (one) and at one per core. busy: that many processes
    keep a core busy each meanwhile."""
    import tempfile

    script, common = _fashion_jobs("stacked", "Fashion-MNIST jobs (5 epochs) as one stack",
                                   device)  # fmt: skip
    if script is None:
        return
    every = f"trainer.threads={os.cpu_count()}"
    sweeps = {"12 jobs": ["optim.lr=0.03,0.1,0.3", "seed=1,2,3,4"],
              f"12 jobs, {every}": ["optim.lr=0.03,0.1,0.3", "seed=1,2,3,4", every],
              "16 jobs": ["optim.lr=0.03,0.1,0.3,1", "seed=1,2,3,4"]}  # fmt: skip
    stop = _busy(busy)
    if busy:
        print(f"{busy} other processes keep a core busy each throughout ({os.cpu_count()} cores)")
    try:
        best = {name: (float("inf"), 0.0) for name in ["one run", *sweeps]}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(rounds):
                for i, name in enumerate(best):
                    folder = f"{tmp}/{r}-{i}"  # no comma or '=': Hydra would read a sweep
                    if name == "one run":
                        cmd = [sys.executable, script, *common, f"hydra.run.dir={folder}/run"]
                    else:
                        cmd = [sys.executable, script, "-m", "hydra/launcher=stacked", *common,
                               *sweeps[name], f"hydra.sweep.dir={folder}"]  # fmt: skip
                    wall = _best_wall(cmd, 1, ROOT)
                    if wall < best[name][0]:
                        best[name] = (wall, _train_seconds(folder))
        jax = _jax_stacked(rounds)
    finally:
        stop()
    one_wall, one_train = best["one run"]
    print(f"{'':<44}{'wall s':>8}{'ratio':>7}{'training s':>12}{'ratio':>7}")
    for name, (wall, seconds) in best.items():
        label = name if name == "one run" else f"{name}, stacked launcher"
        print(f"{label:<44}{wall:>8.2f}{wall / one_wall:>7.2f}{seconds:>12.2f}"
              f"{seconds / one_train:>7.2f}")  # fmt: skip
    if jax is not None:
        print(
            f"{'12 jobs, JAX vmap in a jitted lax.scan':<44}{'':>8}{'':>7}{jax:>12.2f}"
            f"{jax / one_train:>7.2f}  (one core; training: its 5 epochs, compiled before)"
        )
    print(f"best of {rounds} rounds, interleaved; wall: the command end to end")


def _jax_stacked(rounds):
    """The best training seconds of contestants.jax_stacked (the 12 jobs as a JAX vmap), on one
    core, or None where JAX is not installed (it says so)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from contestants import jax_stacked
    from mlrefresh.data import load_dataset

    made = jax_stacked(load_dataset("fashion_mnist", download=False), 5)
    if isinstance(made, str):
        print(f"skipped: {made}")
        return None
    restore, _ = _one_core()
    try:
        return min(made()[0] for _ in range(rounds))
    finally:
        restore()


SECTIONS = {
    "losses": bench_losses,
    "data": bench_data,
    "loop": bench_loop,
    "parts": bench_parts,
    "accuracy": bench_accuracy,
    "startup": bench_startup,
    "sweep": bench_sweep,
    "stacked": bench_stacked,
    "resume": bench_resume,
}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="N",
        help="stacked: N processes keep a core busy each meanwhile",
    )
    parser.add_argument("--no-pin", action="store_true",
                        help="loop: leave every thread its CPUs (JAX's XLA then uses more than "
                             "one core)")  # fmt: skip
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    # JAX (loop's contestant) at one thread, as the others: set before jax is imported
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                          "intra_op_parallelism_threads=1")  # fmt: skip
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench: --device cuda but CUDA is not available; use --device cpu")
    card = f" ({torch.cuda.get_device_name()})" if device == "cuda" else ""
    print(f"torch {torch.__version__}, device {device}{card}")
    for name in args.sections or SECTIONS:
        if name == "loop":
            bench_loop(device, pin=not args.no_pin)
        elif name == "stacked":
            bench_stacked(device, busy=args.busy)
        else:
            SECTIONS[name](device)


if __name__ == "__main__":
    main()
