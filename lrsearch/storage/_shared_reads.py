"""Reads of a study's trials shared by the calls that ask at once, in `lrsearch storage-proxy`.

Optuna's cache in front of a database (`internals.cached`) reads a study's new and unfinished
trials under one lock, so the proxy's threads read one at a time however many workers ask, and
each read carries every running trial. `SharedReads` makes the calls that arrive while a read is
under way wait for the next one, which starts after they arrived and so sees every write that
finished before they asked: one read answers them all.
"""

from __future__ import annotations

import collections
import copy
import threading

from lrsearch.storage._resilient import DelegatingStorage


class _Read:
    """One read of a study's trials, which the calls that joined it wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.trials: list | None = None
        self.error: BaseException | None = None


class SharedReads(DelegatingStorage):
    """`inner`, its reads of a study's trials (`get_all_trials`) shared by the calls made
    while one of them is in progress."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self._next: dict[int, _Read] = {}  # study -> the read not started yet, which later calls join
        self._reading: dict[int, threading.Lock] = collections.defaultdict(threading.Lock)  # one read at a time

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states=None) -> list:
        with self._lock:
            read = self._next.get(study_id)
            leads = read is None
            if leads:
                read = self._next[study_id] = _Read()
            reading = self._reading[study_id]
        if leads:
            with reading:
                with self._lock:
                    del self._next[study_id]  # a call from now on waits for the read after this one
                try:
                    read.trials = self.call("get_all_trials", study_id, deepcopy=False)
                except BaseException as exc:
                    read.error = exc
                finally:
                    read.done.set()
        else:
            read.done.wait()
        if read.error is not None:
            raise read.error
        trials = read.trials if states is None else [trial for trial in read.trials if trial.state in states]
        return copy.deepcopy(trials) if deepcopy else trials
