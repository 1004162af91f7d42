"""What goes into a run's TensorBoard event file: scalars, the config as text, HParams.

Everything is written into the run directory itself (no timestamped sub-run, unlike
`SummaryWriter.add_hparams`), so `tensorboard --logdir outputs` shows one run per Hydra job,
named by its directory, and the HParams dashboard compares the jobs of a sweep.

Example:
    >>> import tempfile
    >>> from mlrefresh.tensorboard import RunWriter
    >>> writer = RunWriter(tempfile.mkdtemp(), "seed: 0", {"optim.lr": 0.1}, ["loss/val"])
    >>> writer.scalars(1, {"loss/val": 0.5})
    >>> writer.close(success=True)
"""

import contextlib

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from mlrefresh.errors import OutputError

__all__ = ["RunWriter", "hparam_value"]


def hparam_value(value):
    """HParams take bool, int, float or str: anything else (None, lists) becomes text."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


@contextlib.contextmanager
def _writing(run_dir):
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
    so that every epoch is shown once; the config and HParams are in the first file already."""

    def __init__(self, run_dir, config_yaml, hparam_dict, metric_tags, resume_after=0):
        self.run_dir = run_dir
        with _writing(run_dir):
            self._open(run_dir, config_yaml, hparam_dict, metric_tags, resume_after)

    def _open(self, run_dir, config_yaml, hparam_dict, metric_tags, resume_after):
        clean = {k: hparam_value(v) for k, v in hparam_dict.items()}
        experiment, start, self._end = hparams(clean, {tag: 0.0 for tag in metric_tags})
        if resume_after:
            self.writer = SummaryWriter(log_dir=run_dir, purge_step=resume_after + 1)
            return
        self.writer = SummaryWriter(log_dir=run_dir)
        # four leading spaces make a Markdown code block, so the YAML keeps its indentation
        block = "\n".join("    " + line for line in config_yaml.splitlines())
        self.writer.add_text("config", block, global_step=0)
        for summary in (experiment, start):
            self.writer.file_writer.add_summary(summary)

    def scalars(self, step: int, values: dict) -> None:
        with _writing(self.run_dir):
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, global_step=step)

    def close(self, success: bool) -> None:
        with _writing(self.run_dir):
            try:
                if success:  # marks the HParams session as finished
                    self.writer.file_writer.add_summary(self._end)
                self.writer.flush()
            finally:
                with contextlib.suppress(OSError):
                    self.writer.close()
