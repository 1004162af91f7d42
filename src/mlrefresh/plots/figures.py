"""The lecture's graphs, drawn from the project's own code: every curve is the loss Functions (or
output units) evaluated on a grid, and every derivative their hand-written backward, so the
picture is of the code, not of a formula typed again.

Example:
    >>> import tempfile
    >>> from mlrefresh.plots.figures import draw_lecture
    >>> paths = draw_lecture(tempfile.mkdtemp())  # doctest: +SKIP
    >>> [p.rsplit("/", 1)[1] for p in paths][:2]  # doctest: +SKIP
    ['loss_vs_z.png', 'grad_vs_z.png']
"""

import os

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mlrefresh.errors import ConfigError  # noqa: E402
from mlrefresh.losses import bernoulli_ce, square_loss  # noqa: E402
from mlrefresh.units import UNITS  # noqa: E402

__all__ = ["GRAPHS", "STYLE", "draw_lecture", "save"]

F64 = torch.float64
# Colour and line style both tell the curves apart, so a grey-scale print still reads.
STYLE = {
    "square": {"color": "#d95f02", "linestyle": "--", "linewidth": 2.2},
    "ce": {"color": "#1b9e77", "linestyle": "-", "linewidth": 2.2},
    "other": {"color": "#7570b3", "linestyle": ":", "linewidth": 2.2},
}
plt.rcParams.update({"font.size": 11, "axes.titlesize": 11, "figure.dpi": 100})


def save(fig, path, dpi=100) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _value_and_grad(fn, xs, t):
    """Per grid point: the loss of that one sample and dL/dx from the Function's backward."""
    values, grads = [], []
    for x in xs:
        x = x.reshape(1).clone().requires_grad_()
        loss = fn(x, t)
        (g,) = torch.autograd.grad(loss, x)
        values.append(loss.item())
        grads.append(g.item())
    return values, grads


def _square_through_sigmoid(z, t):
    return square_loss(UNITS["sigmoid"](z), t)


_VS_Z = {  # kind -> (y-axis label, legend place, title)
    "loss": ("loss L", "upper center",
             "Loss for t = 1 and t = 0: cross-entropy keeps growing where the prediction is wrong"),
    "grad": ("dL/dz", "upper left",
             "dL/dz: square loss's gradient vanishes when confidently wrong, CE's stays near ±1"),
}  # fmt: skip


def _vs_z(folder, kind):
    """Loss (kind="loss") or dL/dz ("grad") against z, for t = 1 and t = 0, square loss through
    the sigmoid against cross-entropy."""
    ylabel, legend, title = _VS_Z[kind]
    z = torch.linspace(-10, 10, 401, dtype=F64)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, target in zip(axes, (1.0, 0.0)):
        t = torch.tensor([target], dtype=F64)
        for name, fn in (("square", _square_through_sigmoid), ("ce", bernoulli_ce)):
            value, grad = _value_and_grad(fn, z, t)
            label = "square loss through sigmoid" if name == "square" else "cross-entropy"
            ax.plot(z, value if kind == "loss" else grad, label=label, **STYLE[name])
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_xlabel("logit z")
        ax.set_title(f"t = {int(target)}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(loc=legend, fontsize=9)
    fig.suptitle(title)
    return save(fig, os.path.join(folder, f"{kind}_vs_z.png"))


def _one_panel():
    return plt.subplots(figsize=(5.5, 3.8))


def _finish(fig, ax, path, *, xlabel, title, ylabel=None, legend="best"):
    """Labels, legend and grid of a one-panel graph, then the PNG."""
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc=legend)
    ax.grid(alpha=0.3)
    return save(fig, path)


def _ce_vs_y(folder):
    y = torch.linspace(0.001, 0.999, 400, dtype=F64)
    z = torch.log(y) - torch.log1p(-y)  # the logit whose sigmoid is y
    fig, ax = _one_panel()
    for target, style in ((1.0, STYLE["ce"]), (0.0, STYLE["other"])):
        value, _ = _value_and_grad(bernoulli_ce, z, torch.tensor([target], dtype=F64))
        ax.plot(y, value, label=f"t = {int(target)}: -log {'y' if target else '(1 - y)'}", **style)
    return _finish(fig, ax, os.path.join(folder, "ce_vs_y.png"),
                   xlabel="prediction y = sigmoid(z)", ylabel="cross-entropy",
                   title="What is penalized? Confident wrong answers, without bound")  # fmt: skip


def _clamped(folder):
    z = torch.linspace(-1, 2, 601, dtype=F64, requires_grad=True)
    y = UNITS["clamped"](z)
    (dy,) = torch.autograd.grad(y.sum(), z)
    fig, ax = _one_panel()
    ax.plot(z.detach(), y.detach(), label="y = max(0, min(1, z))", **STYLE["other"])
    ax.plot(z.detach(), dy, label="dy/dz (autograd)", **STYLE["square"])
    ax.axvspan(-1, 0, color="grey", alpha=0.15)
    ax.axvspan(1, 2, color="grey", alpha=0.15)
    ax.set_ylim(-0.05, 1.35)  # room above the curves: the legend covers neither
    return _finish(fig, ax, os.path.join(folder, "clamped_unit.png"), xlabel="logit z",
                   ylabel="output y, and its gradient dy/dz",
                   title="The min/max prevent gradient flow: dy/dz = 0 outside [0, 1]",
                   legend="upper left")  # fmt: skip


def _square_on_linear(folder):
    y = torch.linspace(-2, 12, 561, dtype=F64)
    value, _ = _value_and_grad(square_loss, y, torch.tensor([1.0], dtype=F64))
    fig, ax = _one_panel()
    ax.plot(y, value, label="1/2 (y - 1)^2, linear unit, t = 1", **STYLE["square"])
    for point in (0.0, 10.0):
        loss = 0.5 * (point - 1) ** 2
        ax.plot([point], [loss], "o", color="black")
        offset = (-95, 4) if point else (8, 12)  # beside the point, off the curve
        ax.annotate(f"y = {point:g}: L = {loss:g}", (point, loss), xytext=offset,
                    textcoords="offset points")  # fmt: skip
    return _finish(fig, ax, os.path.join(folder, "square_linear_t1.png"),
                   xlabel="prediction y = z", ylabel="square loss", legend="upper center",
                   title="t = 1: square loss is higher at y = 10 than at y = 0")  # fmt: skip


def _softmax_to_argmax(folder):
    a = torch.linspace(0, 8, 321, dtype=F64)
    z = torch.stack([a, torch.ones_like(a), torch.full_like(a, 0.5)], dim=1)
    p = UNITS["softmax"](z)
    fig, ax = _one_panel()
    for k, style in enumerate((STYLE["ce"], STYLE["square"], STYLE["other"])):
        fixed = "" if k == 0 else f" (z_{k + 1} = {[None, 1, 0.5][k]})"
        ax.plot(a, p[:, k], label=f"softmax(z)_{k + 1}{fixed}", **style)
    return _finish(fig, ax, os.path.join(folder, "softmax_argmax.png"),
                   xlabel="z_1, the growing logit", ylabel="probability",
                   title="Softmax approaches arg max as one logit grows")  # fmt: skip


GRAPHS = {
    "loss_vs_z": lambda folder: _vs_z(folder, "loss"),
    "grad_vs_z": lambda folder: _vs_z(folder, "grad"),
    "ce_vs_y": _ce_vs_y,
    "clamped_unit": _clamped,
    "square_linear_t1": _square_on_linear,
    "softmax_argmax": _softmax_to_argmax,
}


def draw_lecture(folder, only=None) -> list[str]:
    """The lecture graphs (all, or those named in `only`) as PNGs in `folder`; their paths."""
    unknown = sorted(set(only or ()) - set(GRAPHS))
    if unknown:
        raise ConfigError(f"no lecture graph {unknown[0]!r}; choose from {', '.join(GRAPHS)}")
    os.makedirs(folder, exist_ok=True)
    return [GRAPHS[name](folder) for name in (only or GRAPHS)]
