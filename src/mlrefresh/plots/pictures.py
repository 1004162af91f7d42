"""Pictures of a run for TensorBoard's Images tab, drawn with tensor operations (no matplotlib
in the training process: an image costs about a millisecond, at epoch ends only).

- `boundary_image`: for 2-D data, the predicted probability of class 1 as a filled map (blue =
  class 0, white = unsure, orange = class 1; K > 2 classes blend their colours by probability,
  pale), with the validation points on top: a black-edged square in the full colour of its
  class, or where the model gets it wrong a hollow one (white inside, edged in its true
  class's colour); a frame with the range of each
  input feature (x1 left to right, x2 bottom to top);
- `template_image`: for image data, each class's weights as a 28x28 map in a grid, on a diverging
  colour map centred at 0 (blue negative, white 0, red positive).

Both return an [H, W, 3] uint8 array (TensorBoard's "HWC").

Example:
    >>> import torch
    >>> from mlrefresh.models import build_model
    >>> from mlrefresh.plots.pictures import boundary_image
    >>> model = build_model("logistic", 2, 2, init="normal", init_scale=1.0)
    >>> boundary_image(model, torch.randn(50, 2), torch.randint(0, 2, (50,))).shape
    (234, 252, 3)
"""

import numpy as np
import torch

__all__ = ["boundary_image", "template_image"]

# Class colours: full for the points, pale (mixed with white) for the map under them
_COLOURS = torch.tensor([[0.12, 0.40, 0.75], [0.95, 0.45, 0.05], [0.20, 0.63, 0.17],
                         [0.52, 0.25, 0.65], [0.85, 0.20, 0.55], [0.55, 0.34, 0.29]])  # fmt: skip
_LIGHT = 0.55 + 0.45 * _COLOURS


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
    col = ((x_val[:, 0] - low[0]) / (high[0] - low[0]) * (size - 1)).round().long().cpu()
    row = ((high[1] - x_val[:, 1]) / (high[1] - low[1]) * (size - 1)).round().long().cpu()
    y = y_val.cpu()
    wrong = (_probabilities(model, x_val).argmax(1).cpu() != y).unsqueeze(1)
    own = _COLOURS[y % len(_COLOURS)]
    inside = torch.where(wrong, torch.ones(3), own)  # right: filled; wrong: hollow
    outline = torch.where(wrong, own, torch.zeros(3))  # the edge keeps the true class
    for dr in range(-2, 3):  # 5x5 squares
        for dc in range(-2, 3):
            colour = outline if max(abs(dr), abs(dc)) == 2 else inside
            image[(row + dr).clamp(0, size - 1), (col + dc).clamp(0, size - 1)] = colour
    return _framed((image.clamp(0, 1) * 255).to(torch.uint8).numpy(), low.tolist(), high.tolist())


def _framed(image, low, high):
    """The map in a white margin with a frame and each axis's range written at its ends."""
    from PIL import Image, ImageDraw

    size = image.shape[0]
    left, bottom, top = 44, 26, 8
    canvas = Image.new("RGB", (size + left + top, size + bottom + top), "white")
    canvas.paste(Image.fromarray(image), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((left - 1, top - 1, left + size, top + size), outline="black")
    draw.text((left, top + size + 3), f"{low[0]:.3g}", fill="black")
    draw.text((left + size - 30, top + size + 3), f"{high[0]:.3g}", fill="black")
    draw.text((left + size // 2 - 6, top + size + 12), "x1", fill="black")
    draw.text((2, top + size - 10), f"{low[1]:.3g}", fill="black")
    draw.text((2, top), f"{high[1]:.3g}", fill="black")
    draw.text((10, top + size // 2 - 5), "x2", fill="black")
    return np.asarray(canvas)


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
