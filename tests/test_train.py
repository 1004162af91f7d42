"""train(cfg) through Hydra's compose API: every model/loss pair, the run directory, refusals."""

import json
import math
import os

import pytest
import torch
from hydra.errors import HydraException
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import write_fake_mnist
from helpers import make_cfg
from mlrefresh import schema
from mlrefresh.errors import ConfigError, DataError, DivergedError
from mlrefresh.models import build_model
from mlrefresh.runs.run import train

VALID = [
    ("logistic", "ce"),
    ("softmax", "ce"),
    ("logistic", "square"),
    ("softmax", "square"),
    ("linear", "square"),
    ("clamped", "square"),
]
TAGS = ["loss/train", "loss/val", "accuracy/train", "accuracy/val", "grad_norm"]
NLL_TAGS = ["nll/train", "nll/val"]


def events(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.mark.parametrize(("model", "loss"), VALID)
def test_every_valid_pair_trains_on_blobs(tmp_path, model, loss):
    m = train(make_cfg(f"model={model}", f"loss={loss}"), run_dir=tmp_path)
    assert m["epochs"] == 20 and m["train_seconds"] > 0
    assert math.isfinite(m["loss/val"]) and 0 <= m["accuracy/val"] <= 1
    assert (m["nll/val"] is not None) == (model in ("logistic", "softmax"))
    if loss == "ce":
        assert m["accuracy/val"] > 0.95
        assert m["nll/val"] == pytest.approx(m["loss/val"])  # for CE the loss is the NLL


@pytest.mark.parametrize(("model", "loss"), VALID)
def test_no_linear_model_solves_xor(tmp_path, model, loss):
    m = train(make_cfg(f"model={model}", f"loss={loss}", "dataset=xor"), run_dir=tmp_path)
    assert m["accuracy/val"] < 0.8


def test_square_loss_nll_is_reported_on_likelihood(tmp_path):
    m = train(make_cfg("loss=square", "trainer.epochs=5"), run_dir=tmp_path)
    assert m["nll/val"] > 0 and m["nll/val"] != pytest.approx(m["loss/val"])


def test_run_directory_holds_metrics_checkpoint_and_events(tmp_path):
    cfg = make_cfg("model=softmax", "dataset.num_classes=3", "trainer.epochs=4")
    m = train(cfg, run_dir=tmp_path)
    names = os.listdir(tmp_path)
    assert {"metrics.json", "model.pt"} <= set(names)
    assert not [n for n in names if n.endswith(".tmp")]
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("accuracy/val", "loss/val", "nll/val", "epochs", "train_seconds"):
        assert on_disk[key] == m[key]
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    assert checkpoint["config"]["model"]["name"] == "softmax"
    model = build_model("softmax", 2, 3)
    model.load_state_dict(checkpoint["state_dict"])
    from mlrefresh.data import load_dataset

    ds = load_dataset("blobs", num_classes=3)
    accuracy = (model.predict(ds.x_val) == ds.y_val).float().mean().item()
    assert accuracy == pytest.approx(m["accuracy/val"])


def test_event_file_has_every_tag_every_epoch_config_and_hparams(tmp_path):
    train(make_cfg("trainer.epochs=3"), run_dir=tmp_path)
    acc = events(tmp_path)
    tags = acc.Tags()
    for tag in TAGS + NLL_TAGS:
        assert [e.step for e in acc.Scalars(tag)] == [1, 2, 3], tag
    assert "config/text_summary" in tags["tensors"]
    config_text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "name: logistic" in config_text
    plugins = acc.PluginTagToContent("hparams")
    assert set(plugins) == {  # no experiment: TensorBoard builds it from every run's keys
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    }
    assert b"optim.lr" in plugins["_hparams_/session_start_info"]
    assert b"device.used" in plugins["_hparams_/session_start_info"]
    assert len([f for f in os.listdir(tmp_path) if "tfevents" in f]) == 1
    assert not [d for d in os.listdir(tmp_path) if os.path.isdir(tmp_path / d)]  # no sub-run


def test_custom_scalars_put_train_and_val_of_a_metric_in_one_chart(tmp_path):
    from tensorboard.plugins.custom_scalar import layout_pb2

    train(make_cfg("trainer.epochs=2"), run_dir=tmp_path)
    stored = events(tmp_path).Tensors("custom_scalars__config__")[0].tensor_proto
    layout = layout_pb2.Layout.FromString(stored.string_val[0])
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert charts["loss"] == ["loss/train", "loss/val"]
    assert charts["accuracy"] == ["accuracy/train", "accuracy/val"]
    scalars = set(events(tmp_path).Tags()["scalars"])
    assert {t for tags in charts.values() for t in tags} <= scalars  # each chart has its curves


def test_same_seed_same_run_other_seed_other_run(tmp_path):
    a = train(make_cfg("trainer.epochs=3", "model.init=normal"), run_dir=tmp_path / "a")
    b = train(make_cfg("trainer.epochs=3", "model.init=normal"), run_dir=tmp_path / "b")
    c = train(make_cfg("trainer.epochs=3", "model.init=normal", "seed=1"), run_dir=tmp_path / "c")
    assert a["loss/train"] == b["loss/train"] and a["grad_norm"] == b["grad_norm"]
    assert a["loss/train"] != c["loss/train"]


def _composed(overrides):
    """make_cfg; a value of the wrong type is refused while composing (OmegaConf, against the
    schema), in the words the command line prints (schema.error_line)."""
    try:
        return make_cfg(*overrides)
    except HydraException as exc:
        line = schema.error_line(exc.__cause__)
        assert line, exc
        raise ConfigError(line) from exc


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=linear", "loss=ce"], "loss=ce needs a probability output.*model=linear"),
        (["model=clamped", "loss=ce"], "loss=square with model=clamped"),
        (["dataset.num_classes=3"], "model=logistic has one output.*3 classes.*model=softmax"),
        (["dataset=fashion_mnist"], "10 classes"),
        (["optim.lr=0"], "optim.lr=0 must be a finite number > 0"),
        (["optim.momentum=1.5"], "momentum"),
        (["trainer.batch_size=0"], "trainer.batch_size=0"),
        (["model.init=ones"], "model.init='ones'"),
        (["device.name=tpu"], "unknown device 'tpu'"),
        (["optim.schedule=step"], "optim.schedule='step'"),
        (["seed=abc"], "seed='abc' must be a whole number"),
        (["trainer.epochs=1.5"], "trainer.epochs=1.5"),
        (["model.init_scale=abc"], "init_scale='abc' must be a finite number > 0"),
        (["dataset.n_train=abc"], "dataset.n_train='abc' must be a whole number"),
        (["dataset=xor", "+dataset.num_classes=3"], "dataset xor has no option 'num_classes'"),
    ],
)
def test_refused_before_any_work(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(_composed(overrides), run_dir=tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused_before_loading_data(tmp_path):
    cfg = make_cfg("device=cuda", "model=softmax", "dataset=mnist", f"dataset.root={tmp_path}")
    with pytest.raises(ConfigError, match="device=cuda but CUDA is not available"):
        train(cfg, run_dir=tmp_path)
    assert os.listdir(tmp_path) == []  # no download attempted, nothing written


def test_divergence_stops_with_a_clear_error_and_keeps_the_log(tmp_path):
    cfg = make_cfg("model=linear", "loss=square", "optim.lr=1e4", "optim.schedule=constant")
    with pytest.raises(DivergedError, match="diverged; lower optim.lr"):
        train(cfg, run_dir=tmp_path)
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "metrics.json").exists()
    assert [f for f in os.listdir(tmp_path) if "tfevents" in f]


def test_mnist_pair_of_digits_from_local_files(tmp_path):
    write_fake_mnist(tmp_path / "data" / "mnist", n_train=200, n_val=50)
    cfg = make_cfg(
        "dataset=mnist",
        f"dataset.root={tmp_path / 'data'}",
        "dataset.verify=header",  # files of our own
        "dataset.classes=[3,8]",
        "model=logistic",
        "loss=square",
        "trainer.epochs=2",
    )
    m = train(cfg, run_dir=tmp_path / "run")
    assert m["epochs"] == 2 and 0 <= m["accuracy/val"] <= 1


def test_mnist_missing_without_download_is_a_data_error(tmp_path):
    cfg = make_cfg(
        "dataset=mnist", "model=softmax", f"dataset.root={tmp_path}", "dataset.download=false"
    )
    with pytest.raises(DataError, match="MNIST files missing"):
        train(cfg, run_dir=tmp_path / "run")


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"),
    reason="apt-get install dataset-fashion-mnist",
)
def test_fashion_mnist_default_reaches_84_percent(tmp_path):
    m = train(make_cfg("model=softmax", "dataset=fashion_mnist"), run_dir=tmp_path)
    assert m["accuracy/val"] >= 0.84


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_lecture_claim_square_loss_stalls_where_cross_entropy_recovers(tmp_path, seed):
    """From the constructed confidently wrong start (experiment=saturation) the sigmoid
    saturates: y(1-y) ~ 0 starves square loss of gradient, while cross-entropy's y - t stays
    large, on every seed."""
    start = ["experiment=saturation", f"seed={seed}", f"dataset.seed={seed + 10}"]
    square = train(make_cfg("loss=square", *start), run_dir=tmp_path / "square")
    ce = train(make_cfg("loss=ce", *start), run_dir=tmp_path / "ce")
    assert square["accuracy/val"] < 0.5 < 0.95 < ce["accuracy/val"]
    first = {r: events(tmp_path / r).Scalars("grad_norm")[0].value for r in ("square", "ce")}
    assert first["square"] < 0.1 * first["ce"]  # the first epoch's gradients
