"""The whole search as a library call (`search`, `join`): options, the worker pool (kept
warm between searches until `shutdown`), the live progress, confirmation of the best
trials and the end of a run."""

from lrsearch.run._search import SearchResult, Timer, check_unchanged, finish, join, prestarted, search, supervise
from lrsearch.workers import shutdown  # the warm workers that searches leave
from lrsearch.run._confirm import confirm  # `lrsearch confirm`
from lrsearch.run._find_lr import RangeTestRun, find_lr  # `lrsearch find-lr`

__all__ = ["SearchResult", "Timer", "check_unchanged", "finish", "join", "prestarted", "search", "supervise"]
__all__ += ["RangeTestRun", "confirm", "find_lr", "shutdown"]
