"""Contestants of `scripts/bench.py loop` that are not PyTorch loops: softmax regression on
Fashion-MNIST, batch 128, SGD with momentum, written as a performance-minded user would in JAX
(the epoch as one `jax.jit` of a `lax.scan` over the batches), and a fused C++ step per batch
(gather and convert the rows, forward, softmax, dz, weight gradient, update: the rows stay in
cache), built with `torch.utils.cpp_extension`. The C++ one is a benchmark reference that states
the limit of this machine, not a training path. Each is skipped, with a line saying why, where
it cannot run (no `jax`: `pip install jax`; no C++ compiler).

Example:
    python scripts/bench.py loop        # prints them beside the project and the hand loop
"""

import time

import torch

__all__ = ["fused_reference", "jax_scan"]

_SOURCE = r"""
#include <torch/extension.h>
#include <cmath>
#include <cstring>
#include <vector>

constexpr int D = 784, K = 10;  // 784 = 98 x 8 floats
typedef float v8 __attribute__((vector_size(32)));

// one epoch of softmax regression, SGD with momentum (PyTorch's: v = m v + g, w -= lr v),
// each batch's rows gathered, converted, used and dropped while in cache; returns the mean loss
double epoch(torch::Tensor pixels, torch::Tensor labels, torch::Tensor order, torch::Tensor w,
             torch::Tensor b, torch::Tensor vw, torch::Tensor vb, double lr, double momentum,
             int64_t batch) {
  const uint8_t* X = pixels.data_ptr<uint8_t>();
  const int64_t* Y = labels.data_ptr<int64_t>();
  const int64_t* P = order.data_ptr<int64_t>();
  float *W = w.data_ptr<float>(), *B = b.data_ptr<float>();
  float *VW = vw.data_ptr<float>(), *VB = vb.data_ptr<float>();
  const int64_t n = order.size(0);
  std::vector<float> gw(K * D), gb(K), row(D), z(K);
  double total = 0;
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t rows = std::min(batch, n - start);
    std::fill(gw.begin(), gw.end(), 0.f);
    std::fill(gb.begin(), gb.end(), 0.f);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t s = P[start + i];
      const uint8_t* x = X + s * D;
      for (int d = 0; d < D; ++d) row[d] = x[d] * (1.f / 255.f);
      v8 acc[K] = {};  // the K dot products side by side: no chain of dependent adds
      for (int d = 0; d < D; d += 8) {
        v8 r, wv;
        std::memcpy(&r, &row[d], sizeof r);
        for (int k = 0; k < K; ++k) {
          std::memcpy(&wv, W + k * D + d, sizeof wv);
          acc[k] += wv * r;
        }
      }
      float top = -INFINITY;
      for (int k = 0; k < K; ++k) {
        z[k] = B[k];
        for (int l = 0; l < 8; ++l) z[k] += acc[k][l];
        top = std::max(top, z[k]);
      }
      float sum = 0;
      for (int k = 0; k < K; ++k) sum += (z[k] = std::exp(z[k] - top));
      total += -std::log(z[Y[s]] / sum);
      for (int k = 0; k < K; ++k) {
        const float dz = (z[k] / sum - (k == Y[s])) / rows;
        gb[k] += dz;
        float* g = gw.data() + k * D;
        for (int d = 0; d < D; ++d) g[d] += dz * row[d];
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
    x = jnp.asarray(ds.x_train.cpu().numpy())
    y = jnp.asarray(ds.y_train.cpu().numpy())
    x_val, y_val = jnp.asarray(ds.x_val.cpu().numpy()), jnp.asarray(ds.y_val.cpu().numpy())
    steps = len(x) // batch

    def loss(params, xb, yb):
        w, b = params
        logp = jax.nn.log_softmax(xb @ w + b)
        return -jnp.take_along_axis(logp, yb[:, None], axis=1).mean()

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
