"""scripts/open_tensorboard.py (make tensorboard) before it hands over to TensorBoard: what it
says about the runs it opens (the HTTP test of what TensorBoard then shows is in test_sweeps)."""

import importlib.util
import os

import pytest
from torch.utils.tensorboard import SummaryWriter

from helpers import ROOT


@pytest.fixture(scope="module")
def opener():
    path = os.path.join(ROOT, "scripts", "open_tensorboard.py")
    spec = importlib.util.spec_from_file_location("open_tensorboard_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _runs(folder, names):
    for name in names:
        writer = SummaryWriter(log_dir=str(folder / name))
        writer.add_scalar("loss/val", 0.5, 1)
        writer.close()


def test_a_big_sweep_points_to_its_means_over_seeds(tmp_path, opener):
    """50 jobs: TensorBoard ticks none, so the Custom Scalars are empty until runs are ticked;
    the sweep's means over seeds (10 runs) are what to open alone."""
    sweep = tmp_path / "sweep"
    _runs(sweep, [f"loss=ce,seed={i}" for i in range(50)])
    _runs(sweep / ".over_seeds", [f"dataset.std={i}" for i in range(10)])
    runs = opener.count_runs(str(sweep))
    assert runs == 60
    note = opener._note([str(sweep)], runs)
    assert note.startswith("note: over 40 runs TensorBoard ticks none of them")
    assert note.endswith(f"make tensorboard ARGS={sweep / '.over_seeds'}")
    assert opener._note([str(sweep / ".over_seeds")], 10) is None


def test_many_runs_elsewhere_get_the_plain_note(tmp_path, opener):
    _runs(tmp_path, [f"run{i}" for i in range(41)])
    assert opener._note([str(tmp_path)], 41).endswith("tick the runs to compare, or open one sweep")
    assert opener._note([str(tmp_path)], 40) is None


def test_a_folder_that_is_not_there_is_one_line_exit_2(tmp_path, opener, capsys):
    assert opener.main([str(tmp_path / "nope"), "--outputs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path / 'nope'}: no such folder; give a sweep or run folder, "
                   f"e.g. {tmp_path}/multirun/<date>_<time>, or --all\n")  # fmt: skip
