"""Every config key against the values a new user gets wrong: train(cfg) either runs or refuses
in one line (a UserError), never a traceback, and a refused run writes nothing.

Each (key, value) is applied as Hydra applies a command-line value (its override parser, then
OmegaConf.update) to the config composed once for the key's group, then train(cfg) runs: the
same code path as the command line minus the process start and the composition, so the whole
table runs in seconds. The slow tier checks that this equals Hydra's own composition for every
case; tests/test_bad_input.py runs a sample of the same mistakes through the command line.
"""

import os

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from conftest import write_fake_mnist
from helpers import compose
from mlrefresh.errors import ConfigError, UserError
from mlrefresh.runs.run import train

# Values as typed on the command line: wrong type, null, nan, inf, negative, zero, huge, a list
# and a mapping where a scalar is meant, a bool where a number is meant.
BAD = ["abc", "null", "nan", "inf", "-inf", "-1", "0", "1e30", "1" + "0" * 30, "true", "[1,2]",
       "{a: 1}"]  # fmt: skip

KEYS = {  # key -> the overrides that select the group where the key lives
    "seed": [],
    "model.init": [],
    "model.init_scale": ["model.init=normal"],
    "model.name": [],
    "loss.name": [],
    "device.name": [],
    "trainer.epochs": [],
    "trainer.batch_size": [],
    "trainer.tensorboard": [],
    "optim.name": [],
    "optim.lr": [],
    "optim.momentum": [],
    "optim.weight_decay": [],
    "optim.schedule": [],
    "optim.betas": ["optim=adam"],
    "dataset.num_classes": ["model=softmax"],
    "dataset.num_features": [],
    "dataset.n_train": [],
    "dataset.n_val": [],
    "dataset.std": [],
    "dataset.seed": [],
    "dataset.root": ["dataset=mnist", "model=softmax"],
    "dataset.download": ["dataset=mnist", "model=softmax"],
    "dataset.mirrors": ["dataset=mnist", "model=softmax"],
    "dataset.checksums": ["dataset=mnist", "model=softmax"],
    "dataset.classes": ["dataset=mnist", "model=softmax"],
    "dataset.limit": ["dataset=mnist", "model=softmax"],
    "dataset.verify": ["dataset=mnist", "model=softmax"],
}
# Values that are fine for a key: the run must then train (quickly).
ACCEPTED = {
    ("seed", "0"),
    ("trainer.epochs", "1"),
    ("dataset.seed", "0"),
    ("dataset.classes", "[1,2]"),
    ("dataset.limit", "null"),
    ("dataset.mirrors", "null"),
    ("dataset.checksums", "null"),
    ("dataset.verify", "header"),
    ("optim.weight_decay", "0"),
    ("trainer.tensorboard", "true"),
    ("dataset.download", "true"),
    ("trainer.batch_size", "1" + "0" * 30),  # larger than the data: one batch per epoch
    ("optim.momentum", "0"),
    ("dataset.classes", "null"),
    ("dataset.limit", "1" + "0" * 30),  # more than there are: all of them
}


_PARSER = OverridesParser.create()


def _base(key, mnist_root) -> list[str]:
    """The overrides every case of `key` starts from: its group, a tiny quick run."""
    base = ["device=cpu", "trainer.epochs=1", "dataset.n_train=50", "dataset.n_val=50"]
    if "dataset=mnist" in KEYS[key]:
        base = [
            "device=cpu",
            "trainer.epochs=1",
            f"dataset.root={mnist_root}",
            "dataset.download=false",
            "dataset.verify=header",
        ]  # fmt: skip (fake files)
        base = [o for o in base if not o.startswith(key + "=")]
        if key in ("dataset.root", "dataset.download"):
            base.append("dataset.mirrors=[http://127.0.0.1:9/]")  # refused at once if used
    return [*KEYS[key], *base]


def with_value(key, value, mnist_root):
    """The config of `<base> key=value`, the value applied as Hydra applies one from the
    command line; HydraException or OmegaConf's where Hydra would refuse it."""
    cfg = compose(*_base(key, mnist_root))
    override = _PARSER.parse_overrides([f"{key}={value}"])[0]
    OmegaConf.update(cfg, key, override.value(), merge=True)
    return cfg


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_fake_mnist(root / "mnist", n_train=40, n_val=20)
    return str(root)


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("key", list(KEYS))
def test_every_key_with_every_bad_value(tmp_path, mnist_root, key, value):
    try:
        cfg = with_value(key, value, mnist_root)
    except (HydraException, OmegaConfBaseException):  # Hydra's refusal: see test_bad_input.py
        return
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    try:
        metrics = train(cfg, run_dir=run_dir)
    except UserError as exc:
        message = str(exc)
        assert "\n" not in message and message, message
        assert (key, value) not in ACCEPTED, message
        if isinstance(exc, ConfigError):
            assert os.listdir(run_dir) == [], "a refused run wrote files"
        return
    assert (key, value) in ACCEPTED, f"{key}={value} was accepted: {metrics}"
    assert 0 <= metrics["accuracy/val"] <= 1


@pytest.mark.slow
def test_the_table_equals_hydras_own_composition(mnist_root):
    """For every case, the value applied above gives the config Hydra composes from the same
    command line, or both refuse it."""
    differ = []
    for key in KEYS:
        for value in BAD:
            try:
                ours = OmegaConf.to_yaml(with_value(key, value, mnist_root))
            except (HydraException, OmegaConfBaseException):
                ours = None
            try:
                hydras = OmegaConf.to_yaml(compose(*_base(key, mnist_root), f"{key}={value}"))
            except HydraException:
                hydras = None
            if ours != hydras:
                differ.append(f"{key}={value}")
    assert not differ, differ


@pytest.mark.parametrize("group", ["trainer", "model", "optim", "loss", "device", "dataset"])
def test_unknown_keys_refused_in_every_group_naming_the_known_ones(tmp_path, group):
    cfg = compose(*["device=cpu", f"+{group}.bogus=1"])
    with pytest.raises(
        ConfigError, match=rf"(unknown key {group}.bogus|no option 'bogus').*(only|are) \w"
    ):
        train(cfg, run_dir=tmp_path)


def test_unknown_top_level_key_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown key bogus; the config has only dataset"):
        train(compose(*["device=cpu", "+bogus=1"]), run_dir=tmp_path)


def test_missing_group_refused(tmp_path):
    with pytest.raises(ConfigError, match="no model group; choose one"):
        train(compose(*["device=cpu", "~model"]), run_dir=tmp_path)


def test_huge_generated_data_set_refused_before_allocating(tmp_path):
    cfg = compose(*["device=cpu", "dataset.n_train=100000000", "dataset.num_features=100"])
    with pytest.raises(ConfigError, match="lower dataset.n_train or dataset.num_features"):
        train(cfg, run_dir=tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lr=1e4", "model=linear", "loss=square"], r"in epoch 1: .*no epoch finished"),
        (
            [
                "model.init=normal",
                "model.init_scale=1e4",
                "model=linear",
                "loss=square",
                "optim.lr=1",
            ],
            "lower optim.lr .* or model.init_scale",
        ),  # fmt: skip
    ],
)
def test_divergence_messages_say_what_is_true(tmp_path, overrides, message):
    from mlrefresh.errors import DivergedError

    cfg = compose(*["device=cpu", "optim.schedule=constant", *overrides])
    with pytest.raises(DivergedError, match=message):
        train(cfg, run_dir=tmp_path)
