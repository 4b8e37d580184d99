"""Python's own `multiprocessing`, where lrsearch relies on an undocumented behaviour."""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Iterator

_main_lock = threading.Lock()


@contextlib.contextmanager
def without_main_module() -> Iterator[None]:
    """Processes spawned inside this block do not run the parent's `__main__`, which spawning
    runs again in each child where it has a `__spec__` name (`python -m`) or a `__file__` (a
    script), as `multiprocessing.spawn.get_preparation_data` reads them (undocumented): a
    script calling `lrsearch.search` without a `__main__` guard would search again in every
    worker. Both are hidden here, under a lock, and restored (a defined study travels pickled)."""
    main = sys.modules["__main__"]
    with _main_lock:
        hidden = {name: vars(main).pop(name) for name in ("__file__", "__spec__") if name in vars(main)}
        main.__spec__ = None
        try:
            yield
        finally:
            vars(main).pop("__spec__", None)
            vars(main).update(hidden)
