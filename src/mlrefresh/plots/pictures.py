"""Pictures of a run for TensorBoard's Images tab, drawn with tensor operations (no matplotlib
in the training process: an image costs about a millisecond, at epoch ends only).

- `boundary_image`: for 2-D data, the predicted probability of class 1 as a filled map (blue =
  class 0, white = unsure, orange = class 1; K > 2 classes blend their colours by probability),
  with the validation points on top in the darker colour of their class;
- `template_image`: for image data, each class's weights as a 28x28 map in a grid, on a diverging
  colour map centred at 0 (blue negative, white 0, red positive).

Both return an [H, W, 3] uint8 array (TensorBoard's "HWC").

Example:
    >>> import torch
    >>> from mlrefresh.models import build_model
    >>> from mlrefresh.plots.pictures import boundary_image
    >>> model = build_model("logistic", 2, 2, init="normal", init_scale=1.0)
    >>> boundary_image(model, torch.randn(50, 2), torch.randint(0, 2, (50,))).shape
    (200, 200, 3)
"""

import torch

__all__ = ["boundary_image", "template_image"]

# Class colours: light where the model is sure, dark for the points (grey-scale tells them apart)
_LIGHT = torch.tensor([[0.27, 0.51, 0.71], [0.99, 0.55, 0.24], [0.40, 0.74, 0.39],
                       [0.62, 0.42, 0.72], [0.89, 0.47, 0.76], [0.55, 0.34, 0.29]])  # fmt: skip
_DARK = _LIGHT * 0.45


@torch.no_grad()
def _probabilities(model, x):
    z = model(x)
    y = model.output(z)
    if model.binary:  # sigmoid, or a linear/clamped unit read as a probability
        p1 = y.clamp(0, 1)
        return torch.stack([1 - p1, p1], dim=1)
    return y


@torch.no_grad()
def boundary_image(model, x_val, y_val, size=200):
    """The decision map of a model on 2-D inputs, validation points on top."""
    x_val, y_val = x_val.float(), y_val
    low, high = x_val.min(0).values, x_val.max(0).values
    pad = 0.1 * (high - low) + 1e-6
    low, high = low - pad, high + pad
    xs = torch.linspace(float(low[0]), float(high[0]), size, device=x_val.device)
    ys = torch.linspace(float(high[1]), float(low[1]), size, device=x_val.device)  # top row: high
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1).reshape(-1, 2)
    p = _probabilities(model, grid).float().cpu()  # [size^2, K]
    k = p.shape[1]
    colours = _LIGHT[torch.arange(k) % len(_LIGHT)]
    if k == 2:  # white where unsure, full colour where sure
        sure = (p[:, 1:2] - 0.5).abs() * 2
        rgb = (1 - sure) + sure * torch.where(p[:, 1:2] >= 0.5, colours[1], colours[0])
    else:
        rgb = p @ colours
    image = rgb.reshape(size, size, 3)
    # points: 3x3 squares, in the dark colour of their true class
    col = ((x_val[:, 0] - low[0]) / (high[0] - low[0]) * (size - 1)).round().long().cpu()
    row = ((high[1] - x_val[:, 1]) / (high[1] - low[1]) * (size - 1)).round().long().cpu()
    dark = _DARK[y_val.cpu() % len(_DARK)]
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            image[(row + dr).clamp(0, size - 1), (col + dc).clamp(0, size - 1)] = dark
    return (image.clamp(0, 1) * 255).to(torch.uint8).numpy()


@torch.no_grad()
def template_image(weight, side=28, columns=5, scale=4):
    """Rows of `weight` [K, side*side] as maps in a grid, blue < 0 < red, each class on its own
    symmetric scale; `scale` enlarges each pixel."""
    w = weight.detach().float().cpu()
    k = w.shape[0]
    maps = w.reshape(k, side, side)
    maps = maps / maps.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)  # [-1, 1]
    blue, red = torch.tensor([0.13, 0.40, 0.67]), torch.tensor([0.70, 0.09, 0.17])
    m = maps.unsqueeze(-1)
    rgb = torch.where(m < 0, 1 + m * (1 - blue), 1 - m * (1 - red))  # white at 0
    columns = min(columns, k)
    rows = -(-k // columns)
    gap = 2
    cell = side + gap
    image = torch.ones(rows * cell + gap, columns * cell + gap, 3) * 0.5
    for i in range(k):
        r, c = divmod(i, columns)
        image[gap + r * cell : gap + r * cell + side, gap + c * cell : gap + c * cell + side] = rgb[
            i
        ]
    image = image.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    return (image.clamp(0, 1) * 255).to(torch.uint8).numpy()
