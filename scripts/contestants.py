"""Contestants of `scripts/bench.py loop` and `stacked` other than the project and the hand
loop: softmax regression on Fashion-MNIST, batch 128, SGD with momentum, written as a
performance-minded user would in JAX (the epoch as one `jax.jit` of a `lax.scan` over the
batches; 12 jobs as a `jax.vmap` inside it), as the leanest eager PyTorch loop (no
diagnostics), and as a fused C++ step per batch (gather and convert 4 rows, their logits 2 rows
per pass over W, softmax, dz, the 4 rows' weight gradient in one pass, the update: the rows
stay in cache), built with `torch.utils.cpp_extension`. The C++ one is a benchmark reference
that states the limit of this machine, not a training path. Each is skipped, with a line
saying why, where it cannot run (no `jax`: `pip install jax`; no C++ compiler).

Example:
    python scripts/bench.py loop        # prints them beside the project and the hand loop
    python scripts/bench.py stacked     # the JAX vmap beside the stacked launcher
"""

import time

import torch

__all__ = ["fused_reference", "jax_scan", "jax_stacked", "lean_loop"]

_SOURCE = r"""
#include <torch/extension.h>
#include <cmath>
#include <cstring>
#include <vector>

constexpr int D = 784, K = 10, R = 4;  // 784 = 98 x 8 floats; rows taken 4 at a time
typedef float v8 __attribute__((vector_size(32)));  // 8 floats: one AVX register

// one epoch of softmax regression, SGD with momentum (PyTorch's: v = m v + g, w -= lr v): each
// batch's rows gathered and converted 4 at a time, their logits computed 2 rows per pass over W
// (each load of W used twice, 5 classes' sums side by side), softmax, dz, and the weight
// gradient added for the 4 rows in one pass (one load and store of it per 4 rows); the rows
// are used while in cache and dropped. Returns the epoch's mean loss.
double epoch(torch::Tensor pixels, torch::Tensor labels, torch::Tensor order, torch::Tensor w,
             torch::Tensor b, torch::Tensor vw, torch::Tensor vb, double lr, double momentum,
             int64_t batch) {
  const uint8_t* X = pixels.data_ptr<uint8_t>();
  const int64_t* Y = labels.data_ptr<int64_t>();
  const int64_t* P = order.data_ptr<int64_t>();
  float *W = w.data_ptr<float>(), *B = b.data_ptr<float>();
  float *VW = vw.data_ptr<float>(), *VB = vb.data_ptr<float>();
  const int64_t n = order.size(0);
  std::vector<float> gw(K * D), gb(K);
  alignas(32) float row[R][D];
  float dz[R][K];
  double total = 0;
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t rows = std::min(batch, n - start);
    std::fill(gw.begin(), gw.end(), 0.f);
    std::fill(gb.begin(), gb.end(), 0.f);
    for (int64_t i0 = 0; i0 < rows; i0 += R) {
      const int m = (int)std::min<int64_t>(R, rows - i0);
      int64_t who[R];
      for (int r = 0; r < R; ++r) {
        if (r >= m) {  // a batch's last rows: zeros, no gradient
          std::memset(row[r], 0, sizeof row[r]);
          who[r] = -1;
          continue;
        }
        who[r] = P[start + i0 + r];
        const uint8_t* x = X + who[r] * D;
        for (int d = 0; d < D; ++d) row[r][d] = x[d] * (1.f / 255.f);
      }
      float z[R][K];
      for (int r = 0; r < R; r += 2) {  // two rows share each load of W
        for (int k0 = 0; k0 < K; k0 += 5) {
          v8 a[2][5] = {};
          for (int d = 0; d < D; d += 8) {
            v8 r0, r1, wv;
            std::memcpy(&r0, &row[r][d], sizeof r0);
            std::memcpy(&r1, &row[r + 1][d], sizeof r1);
            for (int k = 0; k < 5; ++k) {
              std::memcpy(&wv, W + (k0 + k) * D + d, sizeof wv);
              a[0][k] += wv * r0; a[1][k] += wv * r1;
            }
          }
          for (int q = 0; q < 2; ++q) {
            for (int k = 0; k < 5; ++k) {
              float v = B[k0 + k];
              for (int l = 0; l < 8; ++l) v += a[q][k][l];
              z[r + q][k0 + k] = v;
            }
          }
        }
      }
      for (int r = 0; r < R; ++r) {
        if (who[r] < 0) { for (int k = 0; k < K; ++k) dz[r][k] = 0; continue; }
        float top = -INFINITY;
        for (int k = 0; k < K; ++k) top = std::max(top, z[r][k]);
        float sum = 0;
        for (int k = 0; k < K; ++k) sum += (z[r][k] = std::exp(z[r][k] - top));
        const int64_t t = Y[who[r]];
        total += -std::log(z[r][t] / sum);
        for (int k = 0; k < K; ++k) {
          dz[r][k] = (z[r][k] / sum - (k == t)) / rows;
          gb[k] += dz[r][k];
        }
      }
      for (int k = 0; k < K; ++k) {
        float* g = gw.data() + k * D;
        const float a0 = dz[0][k], a1 = dz[1][k], a2 = dz[2][k], a3 = dz[3][k];
        for (int d = 0; d < D; ++d)
          g[d] += a0 * row[0][d] + a1 * row[1][d] + a2 * row[2][d] + a3 * row[3][d];
      }
    }
    for (int j = 0; j < K * D; ++j) W[j] -= lr * (VW[j] = momentum * VW[j] + gw[j]);
    for (int k = 0; k < K; ++k) B[k] -= lr * (VB[k] = momentum * VB[k] + gb[k]);
  }
  return total / n;
}
"""


def _accuracy(x_val, y_val, w, b) -> float:
    with torch.no_grad():
        return ((x_val @ w.t() + b).argmax(1) == y_val).float().mean().item()


def fused_reference(ds, epochs, lr=0.1, momentum=0.9, batch=128):
    """A function of no arguments that trains `epochs` epochs from zeros with the fused C++
    step and returns (seconds, validation accuracy), or a string saying why there is none."""
    try:
        from torch.utils.cpp_extension import load_inline

        module = load_inline("mlrefresh_fused_reference", cpp_sources=[_SOURCE],
                             functions=["epoch"], extra_cflags=["-O3", "-march=native"],
                             verbose=False)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 (no compiler, no headers: the reference is skipped)
        return f"no fused C++ reference: {str(exc).strip().splitlines()[0][:100]}"
    pixels = ds.train_bytes.cpu().contiguous()
    labels = ds.y_train.cpu().contiguous()
    x_val, y_val = ds.x_val.cpu(), ds.y_val.cpu()

    def run():
        w, b = torch.zeros(10, 784), torch.zeros(10)
        vw, vb = torch.zeros_like(w), torch.zeros_like(b)
        start = time.perf_counter()
        for _ in range(epochs):
            order = torch.randperm(len(labels))
            module.epoch(pixels, labels, order, w, b, vw, vb, lr, momentum, batch)
            accuracy = _accuracy(x_val, y_val, w, b)  # validation each epoch, as the others
        return time.perf_counter() - start, accuracy

    return run


def lean_loop(ds, epochs, lr=0.1, momentum=0.9, batch=128):
    """A function of no arguments that trains `epochs` epochs with the leanest eager PyTorch step
    written in Python: the bytes gathered and converted, one product for the logits (bias
    added), torch.softmax, the one-hot subtracted in place, the weight gradient and the update
    in place on one flat buffer of weights and bias, and nothing else (no gradient norms, no
    logits kept, no metrics but the validation accuracy). What eager PyTorch costs per step
    before any diagnostic; returns (seconds, validation accuracy)."""
    pixels, labels = ds.train_bytes, ds.y_train
    x_val, y_val = ds.x_val, ds.y_val
    k, d = 10, pixels.shape[1]

    def run():
        flat, velocity, grad = (torch.zeros(k * d + k) for _ in range(3))
        w, b = flat[: k * d].view(k, d), flat[k * d :]
        gw, gb = grad[: k * d].view(k, d), grad[k * d :]
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(epochs):
                order = torch.randperm(len(labels))
                for idx in order.split(batch):
                    x = torch.index_select(pixels, 0, idx).to(torch.float32).div_(255.0)
                    p = torch.softmax(torch.mm(w, x.t()).t() + b, dim=1)
                    t = torch.index_select(labels, 0, idx).unsqueeze(1)
                    p.scatter_add_(1, t, torch.full_like(t, -1, dtype=p.dtype))
                    p.div_(len(idx))
                    torch.mm(p.t(), x, out=gw)
                    torch.sum(p, 0, out=gb)
                    velocity.mul_(momentum).add_(grad)
                    flat.add_(velocity, alpha=-lr)
                accuracy = _accuracy(x_val, y_val, w, b)  # validation each epoch, as the others
        return time.perf_counter() - start, accuracy

    return run


def _jax_arrays(ds):
    """The data set's float32 pixels and labels as JAX arrays: x, y, x_val, y_val."""
    import jax.numpy as jnp

    return (jnp.asarray(t.cpu().numpy()) for t in (ds.x_train, ds.y_train, ds.x_val, ds.y_val))


def _jax_loss():
    """loss(params, xb, yb): the mean softmax cross-entropy, as a JAX user writes it."""
    import jax
    import jax.numpy as jnp

    def loss(params, xb, yb):
        w, b = params
        logp = jax.nn.log_softmax(xb @ w + b)
        return -jnp.take_along_axis(logp, yb[:, None], axis=1).mean()

    return loss


def jax_scan(ds, epochs, lr=0.1, momentum=0.9, batch=128):
    """A function of no arguments that trains `epochs` epochs with JAX (each epoch one jitted
    `lax.scan` over its batches, validation accuracy in the same jit) and returns (seconds,
    validation accuracy), or a string saying why there is none. Compiled before it is timed.
    The last, partial batch of an epoch is dropped (a scan's steps share one shape)."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return "no JAX contestant: pip install jax"
    x, y, x_val, y_val = _jax_arrays(ds)
    steps = len(x) // batch

    loss = _jax_loss()

    def step(carry, idx):
        params, velocity = carry
        grads = jax.grad(loss)(params, x[idx], y[idx])
        velocity = jax.tree.map(lambda v, g: momentum * v + g, velocity, grads)
        params = jax.tree.map(lambda p, v: p - lr * v, params, velocity)
        return (params, velocity), None

    @jax.jit
    def epoch(params, velocity, key):
        order = jax.random.permutation(key, len(x))[: steps * batch].reshape(steps, batch)
        (params, velocity), _ = jax.lax.scan(step, (params, velocity), order)
        w, b = params
        return params, velocity, ((x_val @ w + b).argmax(1) == y_val).mean()

    zeros = (jnp.zeros((784, 10)), jnp.zeros(10))
    epoch(zeros, zeros, jax.random.key(0))[2].block_until_ready()  # compiled here, not timed

    def run():
        params, velocity, key = zeros, zeros, jax.random.key(0)
        start = time.perf_counter()
        for _ in range(epochs):
            key, sub = jax.random.split(key)
            params, velocity, accuracy = epoch(params, velocity, sub)
            accuracy = float(accuracy)  # read each epoch, as the others do
        return time.perf_counter() - start, accuracy

    return run


def jax_stacked(ds, epochs, lrs=(0.03, 0.1, 0.3), seeds=(1, 2, 3, 4), momentum=0.9, batch=128):
    """A function of no arguments that trains the 12 jobs of `bench.py stacked` (3 learning
    rates x 4 seeds, each seed its own batch order) as JAX would: one `jax.vmap` of the step
    over the models inside the jitted `lax.scan` of an epoch, validation accuracy of every
    model each epoch in the same jit. Returns (seconds, the accuracies), or a string saying why
    there is none. Compiled before it is timed; an epoch's last, partial batch is dropped."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return "no JAX contestant: pip install jax"
    x, y, x_val, y_val = _jax_arrays(ds)
    steps, jobs = len(x) // batch, [(lr, seed) for lr in lrs for seed in seeds]
    rate = jnp.asarray([lr for lr, _ in jobs], dtype=jnp.float32)

    loss = _jax_loss()

    def one(params, velocity, lr, idx):  # one model's step
        grads = jax.grad(loss)(params, x[idx], y[idx])
        velocity = jax.tree.map(lambda v, g: momentum * v + g, velocity, grads)
        return jax.tree.map(lambda p, v: p - lr * v, params, velocity), velocity

    def step(carry, idx):  # idx [models, batch]
        return jax.vmap(one)(*carry, rate, idx), None

    def order(key):
        return jax.random.permutation(key, len(x))[: steps * batch].reshape(steps, batch)

    @jax.jit
    def epoch(params, velocity, keys):
        orders = jax.vmap(order)(keys).transpose(1, 0, 2)  # [steps, models, batch]
        (params, velocity), _ = jax.lax.scan(step, (params, velocity), orders)
        accuracy = jax.vmap(lambda w, b: ((x_val @ w + b).argmax(1) == y_val).mean())(*params)
        return params, velocity, accuracy

    m = len(jobs)
    zeros = (jnp.zeros((m, 784, 10)), jnp.zeros((m, 10)))

    def keys_of(epoch_number):  # each seed's key: the jobs of a seed share their batches
        return jnp.stack([jax.random.fold_in(jax.random.key(seed), epoch_number)
                          for _, seed in jobs])  # fmt: skip

    epoch(zeros, zeros, keys_of(0))[2].block_until_ready()  # compiled here, not timed

    def run():
        params, velocity = zeros, zeros
        start = time.perf_counter()
        for e in range(epochs):
            params, velocity, accuracy = epoch(params, velocity, keys_of(e))
            accuracy = [float(a) for a in accuracy]  # read each epoch, as the project does
        return time.perf_counter() - start, accuracy

    return run
