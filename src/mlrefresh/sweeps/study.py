"""An Optuna study that outlives its process: kept in storage, continued by the same command.

`hparams_search=optuna` keeps its study in `<sweep dir>/optuna.db` (SQLite, Optuna's RDB
storage) unless `hydra.sweeper.storage` names another: any SQLAlchemy URL (`postgresql://...`
for a study shared by several nodes), `journal:<file>` (Optuna's journal file storage, for a
cluster on a shared file system without a database server), or null (in memory).

- The same command again (sweeps/resume.py) continues the study toward its total `n_trials`
  (`trials_left`): a trial counts once it is finished (complete, pruned, failed) or running in
  some process; several processes can work on one study at once and stop at n_trials between
  them (`ask`).
- A running trial writes a heartbeat (its user attribute `heartbeat`, a time) every
  HEARTBEAT_S seconds. A trial that was running when its process died is marked failed and
  enqueued again with the same parameters (user attribute `retry_of`: the first trial's
  number; at most MAX_RETRY times): at once when it was this sweep folder's (the folder is held
  by one process: its earlier one is dead), else when it has sent no heartbeat for GRACE_S
  seconds. The retried trial gets the dead one's job folder back and continues from its
  last.pt.
- Only Optuna's public API: the study, its storage's public methods, enqueue_trial.

Example:
    python scripts/train.py -m hparams_search=optuna hydra.sweep.dir=outputs/study  # killed
    python scripts/train.py -m hparams_search=optuna hydra.sweep.dir=outputs/study  # goes on
    python -c "import optuna; print(optuna.load_study(study_name='mlrefresh',
        storage='sqlite:///outputs/study/optuna.db').best_params)"
"""

import contextlib
import threading
import time
from pathlib import Path

__all__ = [
    "GRACE_S",
    "HEARTBEAT_S",
    "ask",
    "beating",
    "fail_dead",
    "make_sampler",
    "open_storage",
    "open_study",
    "retry_folders",
    "tell",
    "trials_left",
]

HEARTBEAT_S = 5  # a running trial's process records a heartbeat this often
GRACE_S = 30  # a running trial without a heartbeat this long belongs to a dead process
MAX_RETRY = 3  # a trial whose process died is run again at most this often
JOURNAL = "journal:"  # hydra.sweeper.storage=journal:<file>: Optuna's journal file storage


def open_storage(url, tries: int = 10):
    """Optuna's storage for `url` (see the module docstring). Processes that open a new
    database at the same moment race to create its tables (one gets IntegrityError, SQLite's
    "table already exists", PostgreSQL's DuplicateTable): the loser opens it again, when the
    tables are there."""
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    if url is None:
        return optuna.storages.InMemoryStorage()
    url = str(url)
    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url.removeprefix(JOURNAL)))
    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(url)
        except (IntegrityError, OperationalError, ProgrammingError):
            if attempt == tries - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


def _trial_id(storage, study, number: int) -> int:
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def _retry(storage, study, trial, capped: bool) -> None:
    """Fail `trial` (running in a dead process) and enqueue it again, once: another process
    that fails it first does the enqueueing. `capped`: at most MAX_RETRY times (a trial of
    another process; this sweep folder's own are retried whenever its command runs again). The
    new trial's user attribute `previous` is the trial it replaces (its folder: retry_folders)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        if not storage.set_trial_state_values(_trial_id(storage, study, trial.number),
                                              TrialState.FAIL):  # fmt: skip
            return
    except UpdateFinishedTrialError:
        return
    retries = trial.user_attrs.get("retries", 0)
    if retries < MAX_RETRY or not capped:
        first = trial.user_attrs.get("retry_of", trial.number)
        attrs = {"retry_of": first, "retries": retries + 1, "previous": trial.number}
        study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)


def fail_dead(storage, study, sweep_dir) -> int:
    """Retry the running trials of dead processes (module docstring); how many."""
    from optuna.trial import TrialState

    now, dead = time.time(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        mine = trial.user_attrs.get("sweep") == sweep_dir  # this folder's earlier process
        beat = trial.user_attrs.get("heartbeat", trial.datetime_start.timestamp())
        if mine or now - beat > GRACE_S:
            _retry(storage, study, trial, capped=not mine)
            dead += 1
    return dead


def retry_folders(study, sweep_dir) -> dict[str, str]:
    """{trial number: job folder} for the trials waiting to replace trials of this sweep folder
    that died (`previous`, followed back to the latest that got a folder, .jobs/<n>.folder):
    each continues in the folder of the trial it replaces. The records of the trials replaced
    (.jobs/<n>.json, of a job that ended before its trial was told) are removed: the
    replacement's record is the job's."""
    from optuna.trial import TrialState

    from mlrefresh.runs.rundir import JOBS

    jobs = Path(sweep_dir) / JOBS
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    folders = {}
    for trial in trials.values():
        if trial.state != TrialState.WAITING or "previous" not in trial.user_attrs:
            continue
        previous = trial.user_attrs["previous"]
        while isinstance(previous, int) and previous in trials:
            (jobs / f"{previous}.json").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folders[str(trial.number)] = (jobs / f"{previous}.folder").read_text().strip()
                break
            previous = trials[previous].user_attrs.get("previous")
    return folders


def open_study(storage, name, directions, sweep_dir):
    """The study `name` in `storage`, created or loaded, with the trials of dead processes
    failed and enqueued again (see the module docstring)."""
    import optuna

    study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                load_if_exists=True)  # fmt: skip
    fail_dead(storage, study, sweep_dir)
    return study


def make_sampler(conf, space: dict, made: int = 0):
    """The sampler of `hydra.sweeper.sampler` (its `_target_` and keyword arguments; the grid
    sampler gets the space's grid). A study continued with `made` trials in it (any state: a
    failed one and its retry too) draws new random numbers (seeded by seed and made), not the
    first process's again: its random start-up trials would repeat, a trial's parameters and
    folder twice."""
    from hydra.utils import instantiate

    from mlrefresh.sweeps.space import grid

    conf = dict(conf)
    if conf.get("seed") is not None and made:
        conf["seed"] = (int(conf["seed"]) + 7919 * made) % 2**32
    if conf.get("_target_") == "optuna.samplers.GridSampler":
        conf["search_space"] = grid(space)
    return instantiate(conf)


def trials_left(study, n_trials: int) -> int:
    """n_trials minus the trials taken: finished or running. A failed trial that was enqueued
    again counts once, as its last retry (user attribute `retry_of`)."""
    from optuna.trial import TrialState

    last = {}  # the first trial's number -> the latest trial of its retries
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("surplus"):
            continue
        first = trial.user_attrs.get("retry_of", trial.number)
        if first not in last or trial.number > last[first].number:
            last[first] = trial
    taken = sum(t.state != TrialState.WAITING for t in last.values())
    return n_trials - taken


def ask(study, space: dict, n_trials: int, batch: int) -> list:
    """Up to `batch` new trials with `space` sampled, none beyond n_trials: another process
    asking at the same moment may take the last ones; the trials past n_trials (the highest
    numbers, the same in every process's view) are told failed and marked surplus, which
    trials_left skips."""
    from optuna.trial import TrialState

    trials = [study.ask(space) for _ in range(min(batch, trials_left(study, n_trials)))]
    over = -trials_left(study, n_trials)
    if over > 0:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        taken = sorted(t.number for t in running if not t.user_attrs.get("surplus"))
        surplus = set(taken[-over:])
        for trial in [t for t in trials if t.number in surplus]:
            trial.set_user_attr("surplus", True)
            tell(study, trial, None)
            trials.remove(trial)
    return trials


def tell(study, trial, value: float | None) -> None:
    """Tell the study the trial's value, or (None) that it failed. The grid sampler stops the
    study once its grid is walked (`study.stop()`, which Optuna allows only inside
    `optimize`): the trial is recorded all the same, and ask() asks no more."""
    from optuna.trial import TrialState

    try:
        if value is None:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, value)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


@contextlib.contextmanager
def beating(storage, study, trials):
    """While the trials run: their heartbeats, every HEARTBEAT_S seconds (user attribute
    `heartbeat`, the time), so that other processes can tell a live trial from a dead one."""
    ids = [_trial_id(storage, study, t.number) for t in trials]
    stop = threading.Event()

    def beat():
        while True:
            for trial_id in ids:
                with contextlib.suppress(Exception):  # the database is busy: the next beat
                    storage.set_trial_user_attr(trial_id, "heartbeat", time.time())
            if stop.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
