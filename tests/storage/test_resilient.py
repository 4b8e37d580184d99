"""The layer that rides out outages, where it meets what it cannot ride out."""

from __future__ import annotations

import optuna

from lrsearch.storage import ResilientStorage


def test_a_heartbeat_that_fails_says_one_line_and_raises_nothing_in_optunas_heartbeat_thread():
    """Optuna's heartbeat thread would die with a traceback, and the trial's heartbeats
    stop; an in-memory storage has no heartbeats to record."""
    said: list[str] = []
    storage = ResilientStorage(optuna.storages.InMemoryStorage(), "memory", patience=0, notify=said.append)
    storage.record_heartbeat(0)
    assert said == ["storage memory: a heartbeat of trial id 0 was not recorded (AttributeError: 'InMemoryStorage' "
                    "object has no attribute 'record_heartbeat')."]
