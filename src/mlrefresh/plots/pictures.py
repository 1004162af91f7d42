"""Pictures of a run for TensorBoard's Images tab, drawn with tensor operations (no matplotlib
in the training process: an image costs about a millisecond, at epoch ends only).

- `boundary_image`: for 2-D data, the predicted probability of class 1 as a filled map (blue =
  class 0, white = unsure, orange = class 1; K > 2 classes blend their colours by probability,
  pale), with the validation points on top: a black-edged square in the full colour of its
  class, or where the model gets it wrong a hollow one (white inside, edged in its true
  class's colour); a frame with the range of each
  input feature (x1 left to right, x2 bottom to top), and a key: each class's colour and name
  ("class 0", ... where the data set has no names), and the hollow square for misclassified;
- `template_image`: for image data, each class's weights as a 28x28 map in a grid, its name
  above it, on a diverging colour map centred at 0 (blue negative, white 0, red positive; each
  class on its own symmetric scale), with a colour bar that marks -max, 0 and +max.

Both return an [H, W, 3] uint8 array (TensorBoard's "HWC").

Example:
    >>> import torch
    >>> from mlrefresh.models import build_model
    >>> from mlrefresh.plots.pictures import boundary_image
    >>> model = build_model("logistic", 2, 2, init="normal", init_scale=1.0)
    >>> boundary_image(model, torch.randn(50, 2), torch.randint(0, 2, (50,))).shape
    (234, 352, 3)
"""

import functools

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
def boundary_image(model, x_val, y_val, names=None, size=200):
    """The decision map of a model on 2-D inputs, validation points on top, and its key
    (`names`: each class's name, or None)."""
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
    image = (image.clamp(0, 1) * 255).to(torch.uint8).numpy()
    return _framed(image, low.tolist(), high.tolist(), _names(names, k))


def _names(names, k: int) -> list[str]:
    return [str(n) for n in names] if names is not None else [f"class {i}" for i in range(k)]


def _rgb(colour) -> tuple[int, int, int]:
    return tuple(int(round(255 * float(c))) for c in colour)


def _key(draw, x: int, y: int, names: list[str]) -> None:
    """Each class's colour and name, one a line, then the hollow square of a misclassified
    point, from (x, y) down."""
    for i, name in enumerate(names):
        colour = _rgb(_COLOURS[i % len(_COLOURS)])
        draw.rectangle((x, y + 14 * i, x + 8, y + 14 * i + 8), fill=colour, outline="black")
        draw.text((x + 13, y + 14 * i - 1), name[:14], fill="black")
    y += 14 * len(names) + 6
    draw.rectangle((x, y, x + 8, y + 8), fill="white", outline=_rgb(_COLOURS[0]), width=2)
    draw.text((x + 13, y - 1), "misclassified", fill="black")


def _framed(image, low, high, names):
    """The map in a white margin with a frame, each axis's range written at its ends, and the
    key of its colours at the right."""
    from PIL import Image, ImageDraw

    size = image.shape[0]
    left, bottom, top, right = 44, 26, 8, 108
    canvas = Image.new("RGB", (size + left + right, size + bottom + top), "white")
    canvas.paste(Image.fromarray(image), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((left - 1, top - 1, left + size, top + size), outline="black")
    draw.text((left, top + size + 3), f"{low[0]:.3g}", fill="black")
    draw.text((left + size - 30, top + size + 3), f"{high[0]:.3g}", fill="black")
    draw.text((left + size // 2 - 6, top + size + 12), "x1", fill="black")
    draw.text((2, top + size - 10), f"{low[1]:.3g}", fill="black")
    draw.text((2, top), f"{high[1]:.3g}", fill="black")
    draw.text((10, top + size // 2 - 5), "x2", fill="black")
    _key(draw, left + size + 10, top + 2, names)
    return np.asarray(canvas)


@torch.no_grad()
def template_image(weight, side=28, columns=5, scale=4, names=None):
    """Rows of `weight` [K, side*side] as maps in a grid, blue < 0 < red, each class on its own
    symmetric scale, its name above it (`names`, or "class i"), and a colour bar below; `scale`
    enlarges each pixel. The names and the colour bar are drawn once per layout (_frame); each
    call writes the maps into a copy of it (one a epoch: 1.5 against 6.3 ms at one thread)."""
    w = weight.detach().float().cpu()
    k = w.shape[0]
    maps = w.reshape(k, side, side)
    maps = maps / maps.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)  # [-1, 1]
    rgb = (_diverging(maps.unsqueeze(-1)).clamp(0, 1) * 255).to(torch.uint8)  # white at 0
    rgb = rgb.repeat_interleave(scale, 1).repeat_interleave(scale, 2).numpy()
    columns = min(columns, k)
    image = _frame(k, side, columns, scale, tuple(_names(names, k))).copy()
    for i, (top, left) in enumerate(_cells(k, side, columns)):
        image[top * scale : (top + side) * scale, left * scale : (left + side) * scale] = rgb[i]
    return image


_GAP, _LABEL = 2, 4  # in map pixels: between maps, and above each for its name


def _cells(k, side, columns):
    """The top-left corner of each class's map, in map pixels."""
    cell = side + _GAP
    return [(_GAP + r * (cell + _LABEL) + _LABEL, _GAP + c * cell)
            for r, c in (divmod(i, columns) for i in range(k))]  # fmt: skip


@functools.lru_cache(maxsize=8)
def _frame(k, side, columns, scale, names) -> np.ndarray:
    """The picture without its maps: white cells, each class's name above its cell, the colour
    bar below (the same every epoch of a run)."""
    from PIL import Image, ImageDraw

    rows, cell = -(-k // columns), side + _GAP
    height, width = (rows * (cell + _LABEL) + _GAP) * scale, (columns * cell + _GAP) * scale
    bar = 34  # the colour bar's strip, in pixels
    canvas = Image.new("RGB", (width, height + bar), "white")
    draw = ImageDraw.Draw(canvas)
    for (top, left), name in zip(_cells(k, side, columns), names):  # the name above its map
        draw.text((left * scale, (top - _LABEL) * scale - 2), name[:18], fill="black")
    _colour_bar(canvas, draw, height + 4)
    frame = np.asarray(canvas)
    frame.flags.writeable = False  # shared by every call: each writes into its own copy
    return frame


def _diverging(m: torch.Tensor) -> torch.Tensor:
    """Values in [-1, 1] as colours: blue at -1, white at 0, red at +1."""
    blue, red = torch.tensor([0.13, 0.40, 0.67]), torch.tensor([0.70, 0.09, 0.17])
    return torch.where(m < 0, 1 + m * (1 - blue), 1 - m * (1 - red))


def _colour_bar(canvas, draw, y: int) -> None:
    """The diverging scale from -max to +max across the picture, 0 marked in the middle."""
    x0, x1 = 8, canvas.width - 8
    values = torch.linspace(-1, 1, x1 - x0).unsqueeze(-1)
    strip = (_diverging(values) * 255).to(torch.uint8)  # [width, 3]
    for i, colour in enumerate(strip.tolist()):
        draw.line((x0 + i, y, x0 + i, y + 10), fill=tuple(colour))
    draw.rectangle((x0 - 1, y - 1, x1, y + 11), outline="black")
    middle = (x0 + x1) // 2
    draw.line((middle, y - 2, middle, y + 13), fill="black")
    draw.text((x0, y + 14), "-max |w|", fill="black")
    draw.text((middle - 3, y + 14), "0", fill="black")
    draw.text((x1 - 50, y + 14), "+max |w|", fill="black")
    draw.text((middle + 40, y + 14), "(each class its own max)", fill="black")
