"""What goes into a run's TensorBoard event file: scalars (and a Custom Scalars layout with
each metric's train and val in one chart), the config as text, HParams, and pictures
(pictures.py) with a histogram of the logits.

Everything is written into the run directory itself (no timestamped sub-run, unlike
`SummaryWriter.add_hparams`), so `tensorboard --logdir outputs` shows one run per Hydra job,
named by its directory, and the HParams dashboard compares the jobs of a sweep. A run writes
its hyperparameters (session start/end) but no HParams "experiment" (with one per run,
TensorBoard takes one run's at random: its keys only). A finished sweep writes one for all its
jobs into each job's folder (`sweep_experiment`: the same table in every one, so TensorBoard on
the sweep finds it in whichever run it reads first, and no run "." of the sweep folder itself):
the swept keys first, then every key any job has, and the metrics with the likelihood first.

Example:
    >>> import tempfile
    >>> from mlrefresh.plots.tensorboard import RunWriter
    >>> writer = RunWriter(tempfile.mkdtemp(), "seed: 0", {"optim.lr": 0.1})
    >>> writer.scalars(1, {"loss/val": 0.5})
    >>> writer.close(success=True)
"""

import contextlib
import io
from pathlib import Path

import torch
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from mlrefresh.errors import OutputError
from mlrefresh.plots.pictures import boundary_image, template_image

__all__ = ["EXPERIMENT", "LAYOUT", "METRICS_FIRST", "RunWriter", "hparam_value",
           "sweep_experiment", "writing"]  # fmt: skip

# TensorBoard's Custom Scalars tab: each metric's train and val curves in one chart, where a gap
# between them (overfitting) shows; the Scalars tab keeps one chart per tag. A single run's: the
# jobs of a sweep write none (2 lines per job in one chart), the sweep's over-seeds runs one
# margin chart per metric (sweeps/seed_curves.py)
LAYOUT = {
    "train vs val": {
        metric: ["Multiline", [f"{metric}/train", f"{metric}/val"]]
        for metric in ("accuracy", "nll", "loss")
    },
    "likelihood (generated data)": {
        "nll = entropy + kl, val": ["Multiline", ["nll/val", "entropy/val", "kl/val"]],
    },
}


def hparam_value(value):
    """HParams take bool, float or str: a whole number becomes text (TensorBoard shows the
    number 1 as "1.0000"), and so does anything else (None, lists)."""
    if isinstance(value, (bool, float, str)):
        return value
    return str(value)


# the HParams table's metric columns, the likelihood first (then every other scalar)
METRICS_FIRST = ("accuracy/val", "nll/val", "loss/val", "kl/val", "accuracy/train", "nll/train",
                 "loss/train", "grad_norm")  # fmt: skip


EXPERIMENT = ".hparams"  # the end of the name of a job's event file that holds the sweep's table


def sweep_experiment(folders, runs: list[dict], metrics: list[str]) -> None:
    """The HParams "experiment" of a finished sweep, written into each of its jobs' `folders`
    (an event file `*.hparams`, replacing the one an earlier run of the sweep wrote): runs are
    each job's hyperparameters (as its RunWriter wrote them), metrics the scalar tags. Columns:
    the keys whose values differ first (marked `differs`), then every other key any job has;
    metrics in METRICS_FIRST's order, then the rest. Without it TensorBoard lists the metrics
    alphabetically (diag/* before nll/val and loss/val). `tensorboard --logdir <sweep>` shows
    it; over several sweeps TensorBoard takes one of their experiments."""
    from tensorboard.compat.proto.summary_pb2 import SummaryMetadata
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    values = [{k: hparam_value(v) for k, v in run.items()} for run in runs]
    keys = list(dict.fromkeys(k for run in values for k in run))
    differs = {k: len({repr(run[k]) for run in values if k in run}) > 1 for k in keys}
    kinds = {bool: "DATA_TYPE_BOOL", float: "DATA_TYPE_FLOAT64", str: "DATA_TYPE_STRING"}
    infos = [api_pb2.HParamInfo(name=k, differs=differs[k], type=api_pb2.DataType.Value(
                 kinds[type(next(r[k] for r in values if k in r))]))
             for k in sorted(keys, key=lambda k: not differs[k])]  # fmt: skip
    order = [m for m in METRICS_FIRST if m in metrics] + [m for m in metrics
                                                          if m not in METRICS_FIRST]  # fmt: skip
    experiment = api_pb2.Experiment(
        hparam_infos=infos,
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in order],
    )
    content = plugin_data_pb2.HParamsPluginData(experiment=experiment,
                                                version=metadata.PLUGIN_DATA_VERSION)  # fmt: skip
    smd = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
        plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString()))  # fmt: skip
    summary = Summary(value=[Summary.Value(tag=metadata.EXPERIMENT_TAG, metadata=smd)])
    for folder in folders:
        before = list(Path(folder).glob(f"events.out.tfevents.*{EXPERIMENT}"))
        with writing(folder):
            writer = SummaryWriter(log_dir=str(folder), filename_suffix=EXPERIMENT)
            writer.file_writer.add_summary(summary)
            writer.close()
        for old in before:  # the table an earlier run of the sweep wrote
            old.unlink(missing_ok=True)


@contextlib.contextmanager
def writing(run_dir):
    """A failed write (a full disk; TensorBoard's writer thread re-raises it here) as one line."""
    try:
        yield
    except OSError as exc:
        raise OutputError(
            f"cannot write the event file in {run_dir} ({exc.strerror or exc}); free some space "
            "or choose another run folder (hydra.run.dir=...)"
        ) from None


class RunWriter:
    """resume_after=k: a resumed run that saved epoch k. Its new event file purges any step > k
    that the interrupted process logged after its last checkpoint (TensorBoard's purge_step),
    so that every epoch is shown once; the config and HParams are in the first file already.
    A run that starts again from nothing in a folder with an event file (a job of a resumed
    sweep that had logged an epoch but saved no last.pt) purges every step of the earlier one."""

    def __init__(self, run_dir, config_yaml, hparam_dict, resume_after=0, layout=True):
        self.run_dir = run_dir
        with writing(run_dir):
            self._open(run_dir, config_yaml, hparam_dict, resume_after, layout)

    def _open(self, run_dir, config_yaml, hparam_dict, resume_after, layout):
        clean = {k: hparam_value(v) for k, v in hparam_dict.items()}
        _, start, self._end = hparams(clean, {})  # no experiment: see the module docstring
        if resume_after:
            self.writer = SummaryWriter(log_dir=run_dir, purge_step=resume_after + 1)
            return
        earlier = any(Path(run_dir).glob("events.out.tfevents.*"))  # started again in its folder
        self.writer = SummaryWriter(log_dir=run_dir, purge_step=0 if earlier else None)
        if layout:  # train and val of a metric in one chart
            self.writer.add_custom_scalars(LAYOUT)
        # four leading spaces make a Markdown code block, so the YAML keeps its indentation
        block = "\n".join("    " + line for line in config_yaml.splitlines())
        self.writer.add_text("config", block, global_step=0)
        self.writer.file_writer.add_summary(start)

    def pictures(self, step: int, model, data, z_val, image: bool) -> None:
        """The histogram of the validation logits z_val, and with `image` the decision boundary
        (2-D data) or the weight templates (28x28 images, linear models). Drawn here, at the
        epoch's end where the loop waits for its metrics anyway: a worker thread drawing while
        the next epoch trains made their OpenMP threads wait for each other (an epoch at two
        threads took 317 ms instead of 164; scripts/bench.py loop)."""
        with torch.no_grad(), writing(self.run_dir):
            self._histogram("logits/val", z_val.detach().flatten().float(), step)
            if not image:
                return
            if data.num_features == 2:
                picture = boundary_image(model, data.x_val, data.y_val, data.class_names)
                self._image("decision_boundary", picture, step)
            elif data.num_features == 784 and (templates := model.templates()) is not None:
                picture = template_image(templates, names=data.class_names)
                self._image("weight_templates", picture, step)

    def _histogram(self, tag, z, step, bins=64):
        """Buckets counted with tensor ops and read in one transfer (TensorBoard's own
        add_histogram runs numpy over every value)."""
        low, high = z.min(), z.max()
        width = (high - low).clamp_min(1e-6) / bins
        index = ((z - low) / width).long().clamp_(0, bins - 1)
        counts = torch.bincount(index, minlength=bins).to(z.dtype)
        stats = torch.stack([low, high, z.sum(), z.square().sum(), width])
        values = torch.cat([stats, counts]).tolist()  # the one host sync
        low, high, total, squares, width = values[:5]
        limits = [low + width * (i + 1) for i in range(bins)]
        self.writer.add_histogram_raw(tag, low, high, z.numel(), total, squares, limits,
                                      values[5:], global_step=step)  # fmt: skip

    def _image(self, tag, hwc, step):
        buffer = io.BytesIO()
        Image.fromarray(hwc).save(buffer, format="PNG", compress_level=1)
        height, width, channels = hwc.shape
        picture = Summary.Image(height=height, width=width, colorspace=channels,
                                encoded_image_string=buffer.getvalue())  # fmt: skip
        summary = Summary(value=[Summary.Value(tag=tag, image=picture)])
        self.writer.file_writer.add_summary(summary, step)

    def scalars(self, step: int, values: dict) -> None:
        with writing(self.run_dir):
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, global_step=step)

    def flush(self) -> None:
        """What was logged, on disk now: called before last.pt is saved, so that a kill after
        it loses no logged epoch (the resumed run logs only the epochs after last.pt's)."""
        with writing(self.run_dir):
            self.writer.flush()

    def close(self, success: bool) -> None:
        with writing(self.run_dir):
            try:
                if success:  # marks the HParams session as finished
                    self.writer.file_writer.add_summary(self._end)
                self.writer.flush()
            finally:
                with contextlib.suppress(OSError):
                    self.writer.close()
