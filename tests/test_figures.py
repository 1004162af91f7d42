"""The pictures: lecture graphs from the loss Functions, a sweep's curves, TensorBoard images."""

import os

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import write_fake_mnist
from helpers import FIGURES, TRAIN, cli, make_cfg
from mlrefresh.errors import ConfigError
from mlrefresh.plots.figures import GRAPHS
from mlrefresh.runs.run import train


def assert_picture(path, min_size=(300, 200)):
    """Opens as a PNG, is at least min_size, and is not blank (many distinct grey levels)."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1], image.size
        grey = np.asarray(image.convert("L"), dtype=float)
    assert grey.std() > 10 and len(np.unique(grey)) > 20


def figures(*args):
    """scripts/figures.py in-process (helpers.cli)."""
    return cli(FIGURES, *args)


def test_every_lecture_graph_is_drawn(tmp_path):
    result = figures("--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    names = sorted(os.listdir(tmp_path))
    assert names == sorted(f"{g}.png" for g in GRAPHS)
    for name in names:
        assert_picture(tmp_path / name, min_size=(500, 350))


def test_sweep_curves_from_a_small_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    made = cli(TRAIN, "-m", "loss=square,ce", "seed=1,2", "trainer.epochs=3",
               f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = figures("--sweep", str(sweep), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert_picture(tmp_path / "out" / "sweep_sweep.png", min_size=(900, 250))


def test_the_kl_figure_puts_each_runs_nll_minus_kl_on_its_data_sets_entropy(tmp_path):
    """kl averaged five data sets of one entropy in its "NLL - KL = entropy" panel and the
    curves did not sit on the dots (issue 33, item 3). Now its data sets differ in spread: per
    run, NLL - KL at the last epoch against that run's entropy lies on y = x, CE and square
    each with their own colour and marker, and the thick curves are per data set."""
    from matplotlib.colors import to_hex

    from mlrefresh.plots.curves import sweep_figure
    from mlrefresh.plots.figures import STYLE, plt

    sweep = tmp_path / "kl"
    made = cli(TRAIN, "-m", "experiment=kl", "seed=1", "dataset.std=1,3", "trainer.epochs=2",
               "trainer.images=false", f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert made.returncode == 0, made.stderr
    fig = sweep_figure(sweep)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    (claim,) = [ax for title, ax in panels.items() if title.startswith("NLL - KL = entropy")]
    dots = {}
    for c in claim.collections:  # one collection per loss and data set
        dots.setdefault(to_hex(c.get_edgecolor()[0]), []).extend(c.get_offsets().tolist())
    assert dots.keys() == {STYLE["ce"]["color"], STYLE["square"]["color"]}
    assert len({c.get_paths()[0].vertices.shape for c in claim.collections}) == 2  # o and x
    for xy in map(np.array, dots.values()):
        assert len(xy) == 2 and abs(xy[1][0] - xy[0][0]) > 0.2  # entropies far apart
        assert np.abs(xy[:, 1] - xy[:, 0]).max() < 0.02  # on the line y = x
    thick = [line for line in panels["val accuracy"].get_lines() if line.get_linewidth() > 2]
    assert len(thick) == 4  # one mean per loss and data set, not one over both data sets
    assert "contrast loss;" in fig._suptitle.get_text()
    plt.close(fig)


def test_a_symlog_panel_within_one_decade_has_several_labels():
    """The outliers' |dL/dz| panel (0.25-0.45) had a single tick label."""
    from mlrefresh.plots.curves import symlog_axis
    from mlrefresh.plots.figures import plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [0.45, 0.3, 0.25])
    symlog_axis(ax)
    fig.canvas.draw()
    low, high = ax.get_ylim()
    shown = [t for t in ax.get_yticks() if low <= t <= high]
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    plt.close(fig)
    assert len(shown) >= 2 and len(labels) >= 2, (shown, labels)


def _covered_points(fig) -> list[str]:
    """The plotted curves' points that a legend covers, in display coordinates: one entry per
    (panel, curve) that has any."""
    fig.canvas.draw()
    covered = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent().expanded(1.02, 1.05)  # a hair of margin
        for line in ax.get_lines():
            if line.get_label().startswith("_"):  # the zero line, grid: not data
                continue
            xy = ax.transData.transform(np.column_stack(line.get_data()))
            inside = (xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1)
            inside &= (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1)
            if inside.any():
                covered.append(f"{ax.get_title()!r}: {line.get_label()} ({inside.sum()} points)")
    return covered


def test_no_legend_covers_a_curve_of_the_lecture_graphs(tmp_path, monkeypatch):
    """grad_vs_z's legend covered the CE curve near z = -1..0 (issue 33, item 3): each lecture
    graph's legends, as laid out in the saved PNG, hold none of the plotted points."""
    import mlrefresh.plots.figures as module

    laid_out = {}

    def keep(fig, path, dpi=100):
        fig.tight_layout()
        laid_out[os.path.basename(path)] = _covered_points(fig)
        return module.plt.close(fig) or path

    monkeypatch.setattr(module, "save", keep)
    module.draw_lecture(str(tmp_path))
    assert laid_out.keys() == {f"{g}.png" for g in GRAPHS}
    assert {k: v for k, v in laid_out.items() if v} == {}


def test_each_loss_has_its_colour_in_every_figure():
    """CE was green in one figure and orange in another: a sweep's settings take the colour of
    their loss (figures.STYLE) wherever each trains one loss of its own."""
    from mlrefresh.plots.curves import group_styles
    from mlrefresh.plots.figures import STYLE

    ce, square = STYLE["ce"]["color"], STYLE["square"]["color"]
    outliers = {"arm=linear_square": [{"loss": "square"}], "arm=logistic_ce": [{"loss": "ce"}]}
    assert {g: c for g, (c, _) in group_styles(outliers).items()} == {
        "arm=linear_square": square, "arm=logistic_ce": ce}  # fmt: skip
    saturation = {"loss=ce": [{"loss": "ce"}] * 2, "loss=square": [{"loss": "square"}]}
    assert group_styles(saturation)["loss=square"][0] == square
    lrs = {"optim.lr=0.1": [{"loss": "ce"}], "optim.lr=1": [{"loss": "ce"}]}  # one loss: not it
    assert len({c for c, _ in group_styles(lrs).values()}) == 2
    clamped = {"model=clamped": [{"loss": "square"}], "model=linear": [{"loss": "square"}]}
    xor = {f"model={m}": [{"loss": "ce"}] for m in ("logistic", "mlp", "softmax")}
    for other in (lrs, clamped, xor):  # not a loss's contrast: in no loss's colour
        assert not {c for c, _ in group_styles(other).values()} & {ce, square}


@pytest.mark.parametrize("case", ["empty", "no_events", "missing", "only"])
def test_figures_bad_input_one_line_exit_2(tmp_path, case):
    args = {"empty": ["--sweep", str(tmp_path)], "missing": ["--sweep", str(tmp_path / "x")],
            "only": ["--only", "nope", "--out", str(tmp_path / "o")]}.get(case)  # fmt: skip
    if case == "no_events":
        train(make_cfg("trainer.epochs=1", "trainer.tensorboard=false"), run_dir=tmp_path / "r")
        (tmp_path / "r" / ".hydra").mkdir()
        (tmp_path / "r" / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
        args = ["--sweep", str(tmp_path)]
    result = figures(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not (tmp_path / "o").exists()


def _events(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0, "histograms": 0})
    acc.Reload()
    return acc


def test_decision_boundary_and_logits_histogram_in_the_event_file(tmp_path):
    train(make_cfg("trainer.epochs=12", "trainer.image_every=5"), run_dir=tmp_path)
    acc = _events(tmp_path)
    assert [e.step for e in acc.Images("decision_boundary")] == [1, 5, 10, 12]
    assert [e.step for e in acc.Histograms("logits/val")] == list(range(1, 13))
    image = acc.Images("decision_boundary")[-1]
    path = tmp_path / "boundary.png"
    path.write_bytes(image.encoded_image_string)
    assert_picture(path, min_size=(200, 200))


def test_weight_templates_for_image_data(tmp_path):
    write_fake_mnist(tmp_path / "data" / "mnist", n_train=40, n_val=20)
    cfg = make_cfg("dataset=mnist", "model=softmax", f"dataset.root={tmp_path / 'data'}",
                   "dataset.download=false", "dataset.verify=header",
                   "trainer.epochs=2")  # fmt: skip
    train(cfg, run_dir=tmp_path / "run")
    templates = _events(tmp_path / "run").Images("weight_templates")
    assert [e.step for e in templates] == [1, 2]
    # 2 rows of 5 maps (28 pixels, a gap of 2, 4 above for the name) at scale 4, and the bar
    assert (templates[0].width, templates[0].height) == ((5 * 30 + 2) * 4, (2 * 34 + 2) * 4 + 34)


def test_the_pictures_carry_their_keys():
    """The decision map's key: each class's colour beside its name (the data set's names, else
    "class i"); the templates' colour bar: blue at -max, white at 0 (marked), red at +max."""
    from mlrefresh.models import build_model
    from mlrefresh.plots.pictures import _COLOURS, boundary_image, template_image

    model = build_model("softmax", 2, 3, init="normal", init_scale=1.0)
    x, y = torch.randn(60, 2), torch.arange(60) % 3
    image = boundary_image(model, x, y, names=("a", "b", "c"))
    left, top, size = 44, 8, 200
    for i in range(3):  # the swatch's middle
        swatch = image[top + 2 + 14 * i + 4, left + size + 10 + 4]
        assert swatch.tolist() == [round(255 * float(c)) for c in _COLOURS[i]], i
    picture = template_image(torch.randn(3, 784), names=("3", "5", "8"))
    bar = picture[-34 + 4 + 5]  # the bar's middle row
    assert bar[8].tolist()[2] > 150 > bar[8].tolist()[0]  # blue at -max
    assert bar[-9].tolist()[0] > 150 > bar[-9].tolist()[2]  # red at +max
    middle = picture.shape[1] // 2
    assert bar[middle].tolist() == [0, 0, 0]  # 0, marked
    assert min(bar[middle - 3].tolist()) > 240  # white beside it


def test_image_data_sets_name_their_classes(tmp_path):
    from mlrefresh.data.mnist import load_mnist

    write_fake_mnist(tmp_path / "mnist", n_train=40, n_val=20)
    write_fake_mnist(tmp_path / "fashion_mnist", n_train=40, n_val=20)
    digits = load_mnist("mnist", root=str(tmp_path), download=False, verify="header",
                        classes=[3, 8])  # fmt: skip
    assert digits.class_names == ("3", "8")
    clothes = load_mnist("fashion_mnist", root=str(tmp_path), download=False, verify="header")
    assert clothes.class_names[0] == "T-shirt/top" and clothes.class_names[9] == "Ankle boot"


def test_images_off(tmp_path):
    train(make_cfg("trainer.epochs=2", "trainer.images=false"), run_dir=tmp_path)
    tags = _events(tmp_path).Tags()
    assert tags["images"] == [] and tags["histograms"] == []


def test_image_every_zero_refused(tmp_path):
    with pytest.raises(ConfigError, match="trainer.image_every=0 must be a whole number from 1"):
        train(make_cfg("trainer.image_every=0"), run_dir=tmp_path)
    assert os.listdir(tmp_path) == []
