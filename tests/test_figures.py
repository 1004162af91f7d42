"""The pictures: lecture graphs from the loss Functions, a sweep's curves, TensorBoard images."""

import os

import numpy as np
import pytest
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
                   "dataset.download=false", "trainer.epochs=2")  # fmt: skip
    train(cfg, run_dir=tmp_path / "run")
    templates = _events(tmp_path / "run").Images("weight_templates")
    assert [e.step for e in templates] == [1, 2]
    assert (templates[0].width, templates[0].height) == ((5 * 30 + 2) * 4, (2 * 30 + 2) * 4)


def test_images_off(tmp_path):
    train(make_cfg("trainer.epochs=2", "trainer.images=false"), run_dir=tmp_path)
    tags = _events(tmp_path).Tags()
    assert tags["images"] == [] and tags["histograms"] == []


def test_image_every_zero_refused(tmp_path):
    with pytest.raises(ConfigError, match="trainer.image_every=0 must be a whole number from 1"):
        train(make_cfg("trainer.image_every=0"), run_dir=tmp_path)
    assert os.listdir(tmp_path) == []
