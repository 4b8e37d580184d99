"""The storage under many workers: N simulated workers search one study at once, per storage.

Each simulated worker does to the storage what a worker process of `lrsearch run` or `lrsearch
worker` does, through lrsearch's own code: it opens the storage (`open_storage`: its own
connections) under the write-behind layer, counts the claimed trials, loads the study with the
workers' sampler (TPE after the start trials, `workers._job.open_study` with the default pruner,
rebuilt here because that module's pruner import pulls in Keras) and records the model; then
`workers._trials.run_trials` claims and runs its trials: this machine's claim lock and the study's
lock (PostgreSQL's advisory lock, the journal's flock, the proxy's lock study), the stale-trial
sweep, the claimed count, `study.optimize(n_trials=1)` with Optuna's heartbeat thread. Its
objective writes what `TrialRunner` and the pruning callback write (the configuration; each
epoch's report and pruning check; the history and duration), sleeping --train-seconds for each
epoch's training. Workers
are grouped into machines (--per-machine) that share a claim lock, each machine with a parent
that reads the progress every second, sweeps stale trials every 5 s and, once the study is full,
hands the confirmation trainings (--confirm K,N) to its idle workers through the real
`ConfirmationQueue`, which claims and records them under the study's lock.

Workers are threads, each with its own storage object (its own connection pool, as a worker
process has), spread over at most --processes processes. Not reproduced: TensorFlow and
training (the CPU a trial spends here is only Optuna's and lrsearch's), worker start-up beyond
the storage, lanes (one trial at a time per worker), dashboard notes, failures and recovery.
The load generator, the database and the proxy share this machine's CPUs, whose busy share the
table gives: where it nears 100%, the figures measure the machine rather than the storage.

Per case: trials/s, the per-trial storage work (a trial's wall time from asking for its claim to
its end, less its sleeps: storage calls, waits for the claim lock, sampling) as median and p99,
PostgreSQL connections held (peak, from pg_stat_activity), and exactness: exactly the trials
asked, none RUNNING, no number twice, every trial COMPLETE with all epochs' values, its value
and lrsearch's record, and the confirmation recorded in full. PostgreSQL cases run in a fresh
schema each (dropped after); one that would take the server's last free connections is skipped.
The gRPC cases put `lrsearch storage-proxy` (Optuna's storage proxy) in front of PostgreSQL, and
the workers open `grpc://...`; with --proxies K, K of them, each machine opening one in turn. --detail adds
each case's claim lock figures and its time per storage call kind by caller: a worker (while it
holds the claim, apart), its machine's parent, set-up, and background threads (heartbeats, the
write-behind batches, whose state changes are also counted on their own).

    .venv/bin/python benchmarks/storage_load.py                     # 8, 32, 128 workers, every storage
    .venv/bin/python benchmarks/storage_load.py --workers 8,16 --storages postgresql --detail
    .venv/bin/python benchmarks/storage_load.py --workers 512 --storages journal --confirm none
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import multiprocessing
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from lrsearch import internals, results  # noqa: E402
from lrsearch.lr import Space, suggest  # noqa: E402
from lrsearch.options import SearchOptions  # noqa: E402
from lrsearch.storage import PROXY_THREADS, ResilientStorage, WriteBackStorage, open_storage, rdb_under  # noqa: E402
from lrsearch.storage._resilient import DelegatingStorage  # noqa: E402
from lrsearch.workers._claims import Claim, MachineLock, claimed_states, claimed_trials, keep_tickets  # noqa: E402
from lrsearch.workers._confirmations import ConfirmationQueue, Confirming  # noqa: E402
from lrsearch.workers._job import Job, sampler_seed, start_from  # noqa: E402
from lrsearch.workers._messages import Confirm, Dismiss  # noqa: E402
from lrsearch.workers._start_sampler import StartSampler  # noqa: E402
from lrsearch.workers._study_lock import study_lock  # noqa: E402
from lrsearch.workers._supervisor import STALE_CHECK_INTERVAL  # noqa: E402
from lrsearch.workers._trials import run_trials  # noqa: E402

STUDY, OBJECTIVE, SPACE = "load", "val_accuracy", Space()
STEPS_PER_EPOCH, MODEL = 25, {"layers": ["Dense(32, relu)", "Dense(3, softmax)"]}
STORAGES = ("journal", "postgresql", "grpc")
#: PostgreSQL connections a case leaves free for the server's other users; a case needing them is skipped.
SPARE_CONNECTIONS = 20
#: Connections a worker is assumed to hold on PostgreSQL until a case has measured it: one for each of its threads
#: that may use the database at once (its trial's, the write-behind's, the heartbeat's, the advisory lock's).
FIRST_GUESS_PER_WORKER = 4
#: Seconds the driver waits for a simulating process's next message: a safety net, not a limit.
PATIENCE = 1800
_thread = threading.local()  # a thread's role (worker, parent, set-up, else background); a worker's _Tracker


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="8,32,128", help="simulated worker counts (default: 8,32,128)")
    parser.add_argument("--storages", default=",".join(STORAGES), help=f"of {', '.join(STORAGES)} (default: all)")
    parser.add_argument("--postgres", default=os.environ.get("LRSEARCH_TEST_POSTGRES_URL"),
                        help="the PostgreSQL server (default: $LRSEARCH_TEST_POSTGRES_URL)")
    parser.add_argument("--per-machine", type=int, default=8, help="workers per machine (default: 8, a GPU each)")
    parser.add_argument("--processes", type=int, default=8, help="most processes the workers run in (default: 8)")
    parser.add_argument("--trials-per-worker", type=int, default=3, help="n_trials = this x workers (default: 3)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per trial (default: 5)")
    parser.add_argument("--train-seconds", type=float, default=0.2, help="sleep per epoch (default: 0.2)")
    parser.add_argument("--confirm", default="3,3", help="confirmation K,N, or none (default: 3,3)")
    parser.add_argument("--proxy-threads", type=int, default=PROXY_THREADS,
                        help=f"the gRPC proxy's threads (default: {PROXY_THREADS}, as lrsearch storage-proxy's)")
    parser.add_argument("--proxies", type=int, default=1,
                        help="gRPC proxies in front of the database, each serving every K-th machine (default: 1)")
    parser.add_argument("--claims", choices=("lrsearch", "lock"), default="lrsearch",
                        help="lrsearch: as lrsearch claims (by ticket through the proxy); lock: every claim under the "
                             "study's lock, as lrsearch did through the proxy before tickets (default: lrsearch)")
    parser.add_argument("--detail", action="store_true", help="also time each storage call kind and the claim lock")
    args = parser.parse_args(argv)
    try:
        args.workers = [int(n) for n in args.workers.split(",")]
        args.confirm = None if args.confirm == "none" else tuple(int(n) for n in args.confirm.split(","))
    except ValueError:
        parser.error("--workers takes whole numbers like 8,32 and --confirm K,N or none.")
    args.storages = args.storages.split(",")
    if unknown := set(args.storages) - set(STORAGES):
        parser.error(f"unknown storages {sorted(unknown)}; choose from {', '.join(STORAGES)}.")
    if {"postgresql", "grpc"} & set(args.storages) and not args.postgres:
        parser.error("postgresql and grpc need --postgres URL (or $LRSEARCH_TEST_POSTGRES_URL).")
    counts = [*args.workers, args.per_machine, args.processes, args.proxy_threads, args.proxies, args.trials_per_worker,
              args.epochs, *(args.confirm or ())]
    if min(counts) < 1 or args.train_seconds < 0 or args.confirm is not None and len(args.confirm) != 2:
        parser.error("counts must be >= 1, --train-seconds >= 0, --confirm two counts >= 1.")
    return args


# --------------------------------------------------------------------------- the storage, timed


class _Stats:
    """Calls and seconds per (the calling thread's role, storage call) in this process."""

    def __init__(self) -> None:
        self.lock, self.table = threading.Lock(), collections.defaultdict(lambda: [0, 0.0])

    def add(self, name: str, seconds: float) -> None:
        tracker = getattr(_thread, "tracker", None)
        if tracker is not None:
            tracker.in_calls += seconds
        role = getattr(_thread, "role", "background")
        if tracker is not None and tracker.claiming:
            role = "worker, claim held"
        with self.lock:
            entry = self.table[role, name]
            entry[0] += 1
            entry[1] += seconds


STATS = _Stats()


class _Timed(DelegatingStorage):
    """The storage below lrsearch's layers (Optuna's), each call timed by its name."""

    def call(self, name, *args, **kwargs):
        return self._timed(name, lambda: getattr(self.inner, name)(*args, **kwargs))

    def stale_trial_ids(self, study_id: int) -> list[int]:
        if isinstance(self.inner, DelegatingStorage):  # a layer of lrsearch's own (the proxy's client)
            return self.call("stale_trial_ids", study_id)
        return self._timed("stale_trial_ids", lambda: super(_Timed, self).stale_trial_ids(study_id))

    @staticmethod
    def _timed(name: str, work):
        started = time.perf_counter()
        try:
            return work()
        finally:
            STATS.add(name, time.perf_counter() - started)


class _TimedWriteBack(WriteBackStorage):
    """The write-behind layer, each batch it writes timed (its state changes are timed below it too)."""

    def _write(self, batch: list[tuple]) -> None:
        started = time.perf_counter()
        try:
            super()._write(batch)
        finally:
            STATS.add("write-behind batch", time.perf_counter() - started)


def open_client(url: str) -> ResilientStorage:
    """The storage a process opens at `url` (`open_storage`), its calls timed."""
    storage = open_storage(url, wait_to_open=True)
    storage.inner = _Timed(storage.inner)
    return storage


def proxy_command(url: str, port: int, threads: int) -> list[str]:
    """`lrsearch storage-proxy` serving `url` on `port`."""
    return [sys.executable, "-m", "lrsearch", "storage-proxy", "--storage", url, "--port", str(port),
            "--threads", str(threads)]


# --------------------------------------------------------------------------- a simulated machine


#: A trial as a worker timed it: when it ended (monotonic), its storage work (wall time less sleeps), the part of
#: that in storage calls, its wait for the claim lock and how long it held it (seconds), its state.
Timed = collections.namedtuple("Timed", "ended work in_calls waited held state")


class _Tracker:
    """A worker's current trial, timed from asking for its claim to its end; the trials done."""

    def __init__(self) -> None:
        self.trials: list[Timed] = []
        self.begin()

    def begin(self) -> None:
        self.started, self.slept, self.in_calls, self.waited, self.held = time.monotonic(), 0.0, 0.0, 0.0, 0.0
        self.claiming = False

    def claimed(self) -> None:
        self.held_since, self.claiming = time.monotonic(), True
        self.waited = self.held_since - self.started

    def unclaimed(self) -> None:
        self.held, self.claiming = time.monotonic() - self.held_since, False

    def sleep(self, seconds: float) -> None:
        started = time.monotonic()
        time.sleep(seconds)
        self.slept += time.monotonic() - started

    def end(self, state: str) -> None:
        now = time.monotonic()
        self.trials.append(Timed(now, now - self.started - self.slept, self.in_calls, self.waited, self.held, state))


class _TimedClaim(Claim):
    def __init__(self, machine_lock, database_lock, tracker: _Tracker, by_lock: bool) -> None:
        super().__init__(machine_lock, database_lock)
        self.tracker = tracker
        self.tickets = self.tickets and not by_lock  # --claims lock: under the study's lock, as before tickets

    def acquire(self) -> None:
        self.tracker.begin()
        super().acquire()
        self.tracker.claimed()

    def release(self) -> None:
        if self.held:
            self.tracker.unclaimed()
        super().release()


class _Link:
    """The parent as `run_trials` sees it: never stopping; a trial's end ends its timing."""

    def __init__(self, tracker: _Tracker) -> None:
        self.tracker = tracker

    def stopped(self) -> bool:
        return False

    def tell(self, event) -> None:
        self.tracker.end(event.state)


def _logs(params: dict, epoch: int, epochs: int) -> dict[str, float]:
    """An epoch's made-up logs: better the nearer the learning rate is to 3e-3."""
    lr = params.get("lr", params.get("peak_lr", 1e-3))
    accuracy = 0.5 + 0.45 * math.exp(-(math.log10(lr) + 2.5) ** 2 / 2) * (epoch + 1) / epochs
    return {"loss": 1 - accuracy, "accuracy": accuracy, "val_loss": 1 - accuracy, OBJECTIVE: accuracy, "lr": lr}


class _Runner:
    """`TrialRunner` without Keras: a trial's writes, with a sleep for each epoch's training."""

    lanes, lanes_to_time = 1, None  # one trial at a time a worker: no lanes to time

    def __init__(self, epochs: int, train_seconds: float, tracker: _Tracker) -> None:
        self.epochs, self.train_seconds, self.tracker = epochs, train_seconds, tracker
        self.recorded_steps = False

    def __call__(self, trial) -> float:
        started = time.perf_counter()
        config = suggest(trial, SPACE)
        if not self.recorded_steps:
            results.write_study(trial.study, steps_per_epoch=STEPS_PER_EPOCH)
            self.recorded_steps = True
        results.write_trial_config(trial, "cpu", config.to_dict())
        history = collections.defaultdict(list)
        try:
            for epoch in range(self.epochs):
                self.tracker.sleep(self.train_seconds)
                for key, value in _logs(trial.params, epoch, self.epochs).items():
                    history[key].append(value)
                trial.report(history[OBJECTIVE][-1], epoch)  # the pruning callback's report and check
                trial.should_prune()  # the default pruner (NopPruner) never prunes
        finally:
            results.write_trial_end(trial, history, time.perf_counter() - started)
        return history[OBJECTIVE][-1]


class _Worker:
    """A worker process's storage traffic: `_worker._load`, then `_work` (in `run`)."""

    def __init__(self, spec: dict, index: int, machine: "_Machine") -> None:
        self.spec, self.index, self.machine, self.tracker = spec, index, machine, _Tracker()
        self.orders: queue.SimpleQueue = queue.SimpleQueue()
        self.job = Job("load.py", STUDY, spec["n_trials"], spec["epochs"], seed=0,
                       options=SearchOptions(storage=spec["url"], recycle=spec["n_trials"]))
        self.storage = _TimedWriteBack(open_client(spec["url"]))
        held = self.storage.get_n_trials(self.storage.get_study_id_from_name(STUDY), state=claimed_states())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True,
                                                 seed=sampler_seed(0, index, 0, held))
        self.study = optuna.load_study(study_name=STUDY, storage=self.storage, sampler=StartSampler(sampler),
                                       pruner=optuna.pruners.NopPruner())
        start_from(self.job, self.study, SPACE)
        if results.read_study(self.study).model is None:
            results.write_study(self.study, model=MODEL)

    def run(self) -> None:
        _thread.role, _thread.tracker = "worker", self.tracker
        try:
            lock = study_lock(self.storage, self.spec["url"], internals.study_id(self.study))
            if isinstance(getattr(lock, "storage", None), optuna.storages.BaseStorage):  # the proxy's lock: timed too
                lock.storage = _Timed(lock.storage)
            runner = _Runner(self.spec["epochs"], self.spec["train_seconds"], self.tracker)
            by_lock = self.spec["claims"] == "lock"
            full = run_trials(self.job, self.study, runner,
                              lambda: _TimedClaim(self.machine.lock, lock, self.tracker, by_lock), _Link(self.tracker))
            if full and self.machine.confirming:
                self.machine.events.put(("idle", self.index))
                while isinstance(order := self.orders.get(), Confirm):  # until Dismiss
                    started = time.perf_counter()
                    self.tracker.sleep(self.spec["epochs"] * self.spec["train_seconds"])
                    value = _logs(order.task.params, 0, 1)[OBJECTIVE]
                    self.machine.events.put(("confirmed", self.index, order.task, value,
                                             time.perf_counter() - started))
                    self.machine.events.put(("idle", self.index))
            self.storage.flush()
        except BaseException:
            self.machine.errors.append(traceback.format_exc())
        finally:
            self.machine.events.put(("ended", self.index))


class _Machine:
    """A machine's claim lock, its workers, and its parent (`supervise`): the storage reads of
    `Supervisor._supervise` and the progress bar, and the confirmation queue."""

    def __init__(self, spec: dict, index: int, worker_indices: list[int]) -> None:
        self.spec, self.errors, self.confirmed = spec, [], 0
        self.lock = MachineLock.create(multiprocessing.get_context("spawn"))
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.confirming = spec["confirm"] and Confirming(*spec["confirm"])
        self.study = optuna.load_study(study_name=STUDY, storage=open_client(spec["url"]))
        self.queue = ConfirmationQueue(self._send, self.errors, say=lambda line: None)
        self.queue.holder = f"machine{index}:{os.getpid()}"  # as another host's run
        self.study_lock = study_lock(internals.storage_of(self.study), spec["url"], internals.study_id(self.study))
        self.queue.begin(self.confirming, self.study, self.confirming and self.study_lock)
        self.workers = [_Worker(spec, i, self) for i in worker_indices]
        self.by_index = {worker.index: worker for worker in self.workers}
        self.ticket_lock = None if spec["claims"] == "lock" else self.study_lock  # None: no tickets
        keep_tickets(self.study, self.ticket_lock, spec["n_trials"], len(self.workers))  # as its workers start

    def _send(self, index: int, order) -> None:
        self.by_index[index].orders.put(order)

    def supervise(self) -> None:
        from lrsearch.run._progress import LiveProgress

        _thread.role = "parent"
        ended, swept = 0, time.monotonic()
        bar = LiveProgress(self.study, self.spec["n_trials"], out=open(os.devnull, "w"))
        remaining = lambda: self.spec["n_trials"] - claimed_trials(self.study)  # noqa: E731
        running = lambda: self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))  # noqa: E731
        try:
            while ended < len(self.workers):
                while not self.events.empty():
                    kind, index, *rest = self.events.get()
                    if kind == "ended":
                        ended += 1
                    elif kind == "idle":
                        self.queue.lane_idle(index)
                    else:
                        self.queue.confirmed(index, *rest)
                        self.confirmed += 1
                self.queue.step(False, remaining, running)
                bar.tick()
                if time.monotonic() - swept >= STALE_CHECK_INTERVAL:
                    results.fail_stale_trials(self.study)
                    keep_tickets(self.study, self.ticket_lock, self.spec["n_trials"])
                    swept = time.monotonic()
                time.sleep(0.25)
        except BaseException:
            self.errors.append(traceback.format_exc())
            for worker in self.workers:
                worker.orders.put(Dismiss())  # none waits for a confirmation training any more
        self.ended = time.monotonic()


def simulate(spec: dict, go, out) -> None:
    """A process's machines: set up, say ready, run once `go` is set, send what they measured."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    _thread.role = "set-up"
    try:
        machines = [_Machine({**spec, "url": url}, index, workers) for index, workers, url in spec["machines"]]
    except BaseException:
        out.put(("failed", traceback.format_exc()))
        return
    out.put(("ready", None))
    go.wait()
    threads = [threading.Thread(target=target) for machine in machines
               for target in [machine.supervise, *(worker.run for worker in machine.workers)]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(("done", {"trials": [tuple(t) for m in machines for w in m.workers for t in w.tracker.trials],
                      "stats": dict(STATS.table), "confirmed": sum(m.confirmed for m in machines),
                      "errors": [e for m in machines for e in m.errors], "ended": max(m.ended for m in machines),
                      "tensorflow": "tensorflow" in sys.modules}))


# --------------------------------------------------------------------------- one case


@contextlib.contextmanager
def prepared(kind: str, args: argparse.Namespace, folder: str, n_trials: int):
    """(the URLs workers open, one a machine in turn; where to read the study; the PostgreSQL
    application name) of a fresh study on `kind`; a PostgreSQL schema is dropped afterwards,
    the proxies stopped."""
    if kind == "journal":
        path = os.path.join(folder, f"{uuid.uuid4().hex[:8]}.journal")
        _create_study(path, n_trials, args)
        yield [path], path, None
        return
    import sqlalchemy

    schema = f"lrsearch_load_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(args.postgres)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    direct = (f"{args.postgres}{'&' if '?' in args.postgres else '?'}options=-csearch_path%3D{schema}"
              f"&application_name={schema}")
    try:
        _create_study(direct, n_trials, args)
        if kind == "postgresql":
            yield [direct], direct, schema
        else:
            with contextlib.ExitStack() as proxies:
                yield [proxies.enter_context(running_proxy(direct, args.proxy_threads, folder))
                       for _ in range(args.proxies)], direct, schema
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def _create_study(location: str, n_trials: int, args: argparse.Namespace) -> None:
    """The study as `lrsearch run` makes and records it."""
    storage = open_storage(location)
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    results.write_study(study, study_file="load.py", objective=OBJECTIVE, direction="maximize", epochs=args.epochs,
                        batch_size=64, seed=0, n_trials=n_trials, space=SPACE.to_dict())
    results.name_objective(study, OBJECTIVE)
    _close(storage)


def _close(storage) -> None:
    rdb = rdb_under(storage)
    if rdb is not None:
        rdb.engine.dispose()


@contextlib.contextmanager
def running_proxy(url: str, threads: int, folder: str):
    """`lrsearch storage-proxy` in front of `url` for as long as the block runs, its log in
    `folder`; its grpc:// URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = Path(folder) / f"proxy-{port}.log"
    with open(log, "w") as output:
        process = subprocess.Popen(proxy_command(url, port, threads), stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gRPC proxy did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield f"grpc://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


class _Connections:
    """Samples the PostgreSQL connections of one application name, and the server's, while in its block."""

    def __init__(self, url: str) -> None:
        import sqlalchemy

        self.engine, self.text = sqlalchemy.create_engine(url), sqlalchemy.text
        self.app, self.peak, self._done = None, 0, threading.Event()

    def free(self) -> tuple[int, int]:
        """(connections the server takes from its users now, max_connections)."""
        with self.engine.connect() as connection:
            most = int(connection.execute(self.text("SHOW max_connections")).scalar())
            reserved = int(connection.execute(self.text("SHOW superuser_reserved_connections")).scalar())
            used = connection.execute(self.text("SELECT count(*) FROM pg_stat_activity")).scalar()
        return most - reserved - used, most

    @contextlib.contextmanager
    def watching(self, app: str | None):
        self.app, self.peak = app, 0
        self._done.clear()
        thread = threading.Thread(target=self._sample, daemon=True)
        if app:
            thread.start()
        try:
            yield self
        finally:
            self._done.set()
            if app:
                thread.join()

    def _sample(self) -> None:
        with self.engine.connect() as connection:
            while not self._done.wait(0.2):
                held = connection.execute(self.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                                    ":app"), {"app": self.app}).scalar()
                self.peak = max(self.peak, held)
                connection.commit()


def _cpu() -> tuple[int, int]:
    """(busy, total) jiffies of this machine so far."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:8]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def _collect(out, processes: list) -> list:
    """The next message of each process; RuntimeError if one failed, died or kept silent for PATIENCE seconds."""
    found, deadline = [], time.monotonic() + PATIENCE
    while len(found) < len(processes):
        if time.monotonic() > deadline:
            raise RuntimeError(f"a simulating process said nothing for {PATIENCE} s")
        try:
            said, payload = out.get(timeout=1)
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in processes):
                raise RuntimeError("a simulating process died") from None
            continue
        if said == "failed":
            raise RuntimeError(f"a simulating process could not start:\n{payload}")
        found.append(payload)
    return found


def run_case(args: argparse.Namespace, kind: str, n: int, folder: str, connections: "_Connections | None") -> dict:
    """Run `n` simulated workers on a fresh study of `kind`: the case's figures and problems."""
    per = args.per_machine
    n_machines = math.ceil(n / per)
    processes, n_trials = min(args.processes, n_machines), n * args.trials_per_worker
    context = multiprocessing.get_context("spawn")
    with prepared(kind, args, folder, n_trials) as (urls, truth, app):
        machines = [(m, list(range(m * per, min(n, (m + 1) * per))), urls[m % len(urls)]) for m in range(n_machines)]
        go, out = context.Event(), context.Queue()
        spec = {"n_trials": n_trials, "epochs": args.epochs, "train_seconds": args.train_seconds,
                "confirm": args.confirm, "claims": args.claims}
        workers = [context.Process(target=simulate, args=({**spec, "machines": machines[p::processes]}, go, out),
                                   daemon=True) for p in range(processes)]
        with connections.watching(app) if connections else contextlib.nullcontext() as watch:
            set_up = time.monotonic()
            for process in workers:
                process.start()
            _collect(out, workers)
            cpu, started = _cpu(), time.monotonic()
            go.set()
            done = _collect(out, workers)
            busy, total = (now - then for now, then in zip(_cpu(), cpu))
            for process in workers:
                process.join()
        trials = sorted(Timed._make(t) for payload in done for t in payload["trials"])
        stats = collections.defaultdict(lambda: [0, 0.0])
        for payload in done:
            for key, (calls, seconds) in payload["stats"].items():
                stats[key][0] += calls
                stats[key][1] += seconds
        confirmed = sum(payload["confirmed"] for payload in done)
        problems = [*{e.strip().splitlines()[-1] for payload in done for e in payload["errors"]},
                    *check(truth, n_trials, args.epochs, args.confirm, confirmed)]
        if any(payload["tensorflow"] for payload in done):
            problems.append("TensorFlow was imported")
    searched = (trials[-1].ended - started) if trials else math.nan
    return {"storage": kind, "workers": n, "trials": trials, "trials_per_s": len(trials) / searched,
            "connections": watch.peak if app else None, "cpu": busy / max(total, 1), "problems": problems,
            "stats": stats, "set_up_s": started - set_up, "searched_s": searched,
            "confirm_s": max(payload["ended"] for payload in done) - trials[-1].ended if trials else math.nan}


def check(location: str, n_trials: int, epochs: int, confirm, confirmed: int) -> list[str]:
    """What is not exact about the study at `location`."""
    storage = open_storage(location)
    try:
        study = optuna.load_study(study_name=STUDY, storage=storage)
        trials = study.get_trials(deepcopy=False)
        problems = [] if len(trials) == n_trials else [f"{len(trials)} trials for {n_trials}"]
        states = collections.Counter(t.state.name for t in trials)
        problems += [f"{count} {state}" for state, count in states.items() if state != "COMPLETE"]
        numbers = [t.number for t in trials]
        if len(set(numbers)) != len(numbers):
            problems.append(f"{len(numbers) - len(set(numbers))} numbers taken twice")
        incomplete = sum(not _complete(t, epochs) for t in trials if t.state == TrialState.COMPLETE)
        if incomplete:
            problems.append(f"{incomplete} incomplete records")
        if confirm:
            recorded = sum(len(values) for values in results.read_confirmations(study).values())
            if results.plan(study, *confirm) or recorded != confirm[0] * confirm[1] or confirmed != recorded:
                problems.append(f"confirmation: {recorded} values recorded, {confirmed} trained, "
                                f"for {confirm[0] * confirm[1]}")
        return problems
    finally:
        _close(storage)


def _complete(trial, epochs: int) -> bool:
    record = results.read_trial(trial)
    return (sorted(trial.intermediate_values) == list(range(epochs))
            and trial.value == trial.intermediate_values[epochs - 1] and bool(trial.params)
            and None not in (record.worker, record.device, record.config, record.duration_s)
            and {OBJECTIVE, "loss", "lr"} <= set(record.history)
            and all(len(values) == epochs for values in record.history.values()))


# --------------------------------------------------------------------------- the report


def _ms(values: list[float], q: float) -> str:
    """The q-quantile of `values` (seconds) in whole milliseconds."""
    if len(values) < 2:
        return f"{1000 * values[0]:.0f}" if values else "-"
    return f"{1000 * statistics.quantiles(values, n=100)[round(q * 100) - 1]:.0f}"


HEADER = ("| storage | workers | trials/s | storage work/trial p50 ms | p99 ms | PostgreSQL connections (peak) "
          "| CPU busy | exact |\n| --- | --- | --- | --- | --- | --- | --- | --- |")


def row(case: dict) -> str:
    work, held = [t.work for t in case["trials"]], case["connections"]
    cells = [case["storage"], case["workers"], f"{case['trials_per_s']:.1f}", _ms(work, 0.5), _ms(work, 0.99),
             "-" if held is None else f"{held} ({held / case['workers']:.1f}/worker)", f"{case['cpu']:.0%}",
             "; ".join(["NO", *case["problems"]]) if case["problems"] else "yes"]
    return "| " + " | ".join(map(str, cells)) + " |"


def detail(case: dict) -> str:
    """The case's phases, the claim lock's figures and the time per storage call kind, per trial, most first."""
    trials = case["trials"]
    n = max(len(trials), 1)
    waited, held = [t.waited for t in trials], [t.held for t in trials]
    lines = [f"\n{case['storage']}, {case['workers']} workers: set-up {case['set_up_s']:.1f} s, search "
             f"{case['searched_s']:.1f} s, confirmation {case['confirm_s']:.1f} s after it. Per trial: in storage "
             f"calls p50 {_ms([t.in_calls for t in trials], 0.5)} ms; the claim lock waited for p50 "
             f"{_ms(waited, 0.5)} / p99 {_ms(waited, 0.99)} ms, held p50 {_ms(held, 0.5)} / p99 {_ms(held, 0.99)} ms "
             f"(held {sum(held) / max(case['searched_s'], 1e-9):.0%} of the search)",
             "", "| caller | storage call | calls/trial | mean ms | ms/trial |", "| --- | --- | --- | --- | --- |"]
    for (role, name), (calls, seconds) in sorted(case["stats"].items(), key=lambda item: -item[1][1])[:16]:
        lines.append(f"| {role} | {name} | {calls / n:.2f} | {1000 * seconds / calls:.2f} | {1000 * seconds / n:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    connections = _Connections(args.postgres) if {"postgresql", "grpc"} & set(args.storages) else None
    per_worker = FIRST_GUESS_PER_WORKER
    cases = []
    print(f"{args.trials_per_worker} trials a worker of {args.epochs} x {args.train_seconds} s, {args.per_machine} "
          f"workers a machine, confirmation {args.confirm or 'none'}, claims {args.claims}; proxy: lrsearch "
          f"storage-proxy --threads {args.proxy_threads}" + (f", {args.proxies} of them" if args.proxies > 1 else ""),
          flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for n in args.workers:
            for kind in args.storages:
                if kind == "postgresql":
                    free, most = connections.free()
                    needed = math.ceil(n * per_worker)
                    if needed > free - SPARE_CONNECTIONS:
                        print(f"{kind}, {n} workers: skipped: ~{needed} connections needed, {free} free of "
                              f"max_connections {most} ({SPARE_CONNECTIONS} kept for others)", flush=True)
                        continue
                case = run_case(args, kind, n, folder, connections)
                if kind == "postgresql":
                    per_worker = case["connections"] / n
                cases.append(case)
                print(f"{kind}, {n} workers: {len(case['trials'])} trials in {case['searched_s']:.1f} s",
                      "exact" if not case["problems"] else f"NOT exact: {case['problems']}", flush=True)
    print(f"\n{HEADER}\n" + "\n".join(row(case) for case in cases))
    if args.detail:
        print("\n".join(detail(case) for case in cases))
    return 0 if all(not case["problems"] for case in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
