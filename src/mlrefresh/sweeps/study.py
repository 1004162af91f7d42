"""An Optuna study that outlives its process: kept in a database, continued by the same command.

`hparams_search=optuna` keeps its study in `<sweep dir>/optuna.db` (SQLite, Optuna's RDB
storage) unless `hydra.sweeper.storage` names another database (any SQLAlchemy URL:
`postgresql://...` for a study shared by several nodes; null: in memory, as Optuna's default).

- The same command again (sweeps/resume.py) continues the study toward its total `n_trials`
  (`trials_left`): a trial counts once it is finished (complete, pruned, failed) or running in
  some process; several processes can work on one study at once and stop at n_trials between
  them.
- A trial that was running when its process died is marked failed and enqueued again with the
  same parameters (Optuna's heartbeat and RetryFailedTrialCallback): at once when it was this
  sweep folder's (the folder is held by one process: its earlier one is dead), else when its
  process has sent no heartbeat for GRACE_S seconds. The retried trial gets the dead one's job
  folder back and continues from its last.pt.

Example:
    python scripts/train.py -m hparams_search=optuna hydra.sweep.dir=outputs/study  # killed
    python scripts/train.py -m hparams_search=optuna hydra.sweep.dir=outputs/study  # goes on
    sqlite3 outputs/study/optuna.db "select number, state from trials"
"""

import contextlib
import copy
import threading
import time

__all__ = ["GRACE_S", "HEARTBEAT_S", "ask", "beating", "open_study", "reseed", "trials_left"]

HEARTBEAT_S = 5  # a running trial's process records a heartbeat this often
GRACE_S = 30  # a running trial without a heartbeat this long belongs to a dead process


def _storage(url, tries: int = 10):
    """Optuna's RDBStorage at `url`. Processes that open a new database at the same moment
    race to create its tables (one gets IntegrityError or "table already exists"): the loser
    opens it again, when the tables are there."""
    if url is None:
        return None
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryFailedTrialCallback
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(tries):
        try:
            with warnings.catch_warnings():  # RetryFailedTrialCallback "is experimental"
                warnings.simplefilter("ignore", ExperimentalWarning)
                retry = RetryFailedTrialCallback(max_retry=3)
            return RDBStorage(str(url), heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              failed_trial_callback=retry)  # fmt: skip
        except (IntegrityError, OperationalError):
            if attempt == tries - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


def open_study(url, name, sampler, directions, sweep_dir):
    """The study `name` in the database at `url` (None: in memory), created or loaded, with
    the trials of dead processes failed and enqueued again (see the module docstring)."""
    import optuna
    from optuna.trial import TrialState

    storage = _storage(url)
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                directions=directions, load_if_exists=True)  # fmt: skip
    if storage is None:
        return study
    optuna.storages.fail_stale_trials(study)
    retry = storage.get_failed_trial_callback()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        mine = trial.user_attrs.get("sweep") == sweep_dir  # this folder's earlier process: dead
        if mine and storage.set_trial_state(trial._trial_id, TrialState.FAIL):
            retry(study, copy.deepcopy(storage.get_trial(trial._trial_id)))
    return study


def trials_left(study, n_trials: int) -> int:
    """n_trials minus the trials taken: finished or running. A failed trial that was enqueued
    again counts once, as its last retry (Optuna's `failed_trial` system attribute)."""
    from optuna.trial import TrialState

    last = {}  # the first trial's number -> the latest trial of its retries
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("surplus"):
            continue
        first = trial.system_attrs.get("failed_trial", trial.number)
        if first not in last or trial.number > last[first].number:
            last[first] = trial
    taken = sum(t.state != TrialState.WAITING for t in last.values())
    return n_trials - taken


def ask(study, n_trials: int, batch: int) -> list:
    """Up to `batch` new trials, none beyond n_trials: another process asking at the same
    moment may take the last ones; the trials past n_trials (the highest numbers, the same in
    every process's view) are told failed and marked surplus, which trials_left skips."""
    from optuna.trial import TrialState

    trials = [study.ask() for _ in range(min(batch, trials_left(study, n_trials)))]
    over = -trials_left(study, n_trials)
    if over > 0:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        taken = sorted(t.number for t in running if not t.user_attrs.get("surplus"))
        surplus = set(taken[-over:])
        for trial in [t for t in trials if t.number in surplus]:
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            trials.remove(trial)
    return trials


@contextlib.contextmanager
def beating(study, trials):
    """While the trials run: their heartbeats, every HEARTBEAT_S seconds (in memory: none)."""
    storage = study._storage
    if not getattr(storage, "is_heartbeat_enabled", lambda: False)():
        yield
        return
    stop = threading.Event()

    def beat():
        while True:
            for trial in trials:
                with contextlib.suppress(Exception):  # the database is busy: the next beat
                    storage.record_heartbeat(trial._trial_id)
            if stop.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def reseed(sampler, seed, done: int) -> None:
    """A study continued after `done` trials draws new random numbers (seeded by seed and
    done), not the first process's again: its random start-up trials would repeat."""
    import numpy as np

    if seed is None or not done:
        return
    for part in (sampler, getattr(sampler, "_random_sampler", None)):
        if part is not None and hasattr(part, "_rng"):
            part._rng = np.random.RandomState((int(seed) + 7919 * done) % 2**32)
