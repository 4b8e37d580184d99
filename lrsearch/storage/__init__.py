"""Where trials are kept: opening a storage URL or journal file (`open_storage`) and a study
in it (`open_study`), riding out outages (`ResilientStorage`), writing a trial's records
behind its epochs (`WriteBackStorage`), checking and repairing journal files, redacting
passwords and wording a database's errors in one plain line (`describe_error`), and
serving a database to many workers through Optuna's gRPC storage proxy (`serve_proxy`;
the workers open `grpc://HOST:PORT`).

The storage classes subclass Optuna's and are imported on first use, so that reading a
storage's name or default stays free of Optuna.
"""

from __future__ import annotations

import importlib

from lrsearch.storage._journal import JournalDamagedError, check_journal, find_damage, journal_lock, repair_journal
from lrsearch.storage._open import (CLAIM_LOCK_PREFIX, DEFAULT_STORAGE, NoSuchStudy, heartbeat_settings, open_storage,
                                    open_study, optuna_cli_hint, require_storage, study_names)
from lrsearch.storage._proxy import PROXY_HOST, PROXY_PORT, PROXY_THREADS, is_loopback, serve_proxy
from lrsearch.storage._redact import check_url, describe_error, is_grpc, is_url, passwords_of, redact, redact_text

#: Name -> the module that holds it, imported (with Optuna) on first use.
_WITH_OPTUNA = {"ResilientStorage": "_resilient", "rdb_under": "_resilient", "WriteBackStorage": "_writeback",
                "NoWaitingTrial": "_writeback"}

__all__ = ["CLAIM_LOCK_PREFIX", "DEFAULT_STORAGE", "NoSuchStudy", "JournalDamagedError", "PROXY_HOST", "PROXY_PORT",
           "PROXY_THREADS", "check_journal", "check_url", "describe_error", "find_damage", "heartbeat_settings",
           "is_grpc", "is_loopback", "is_url", "journal_lock", "open_storage", "open_study", "optuna_cli_hint",
           "passwords_of", "redact", "redact_text", "repair_journal", "require_storage", "serve_proxy", "study_names",
           *_WITH_OPTUNA]


def __getattr__(name: str):
    if name in _WITH_OPTUNA:
        return getattr(importlib.import_module(f"{__name__}.{_WITH_OPTUNA[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
