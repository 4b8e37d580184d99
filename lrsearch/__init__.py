"""lrsearch: find the learning-rate settings of a Keras model with Optuna.

Importing this package is light: it needs neither TensorFlow nor Optuna. Here are what the
README documents: the study building blocks (`Settings`, `Space`, `define_study`), the
search (`search`, `join`, `SearchOptions`, `SearchResult`, and `shutdown`, which ends the
worker processes searches keep warm for the next), every other command as a function (`confirm`,
`find_lr`, `export_study`, `write_report`, `repair_journal`, `serve_proxy`), `load_config`, `LRConfig`,
`retrain` and `load_model` (a retrained model, with the study file's own functions), and the
errors they raise (`lrsearch.errors`); what trains imports TensorFlow when it is used, and
`write_report` its plotting libraries.
"""

from lrsearch._version import __version__
from lrsearch.errors import LrsearchError, SearchStopped, StorageError, StudyFileError, UsageError, WriteError
from lrsearch.export import export_study, load_config, load_model, retrain
from lrsearch.lr import ConfigError, LRConfig, Space
from lrsearch.options import SearchOptions
from lrsearch.run import SearchResult, confirm, find_lr, join, search, shutdown
from lrsearch.storage import repair_journal, serve_proxy
from lrsearch.study import Settings, define_study

__all__ = ["ConfigError", "LRConfig", "LrsearchError", "SearchOptions", "SearchResult", "SearchStopped", "Settings",
           "Space", "StorageError", "StudyFileError", "UsageError", "WriteError", "__version__", "confirm",
           "define_study", "export_study", "find_lr", "join", "load_config", "load_model", "repair_journal", "retrain",
           "serve_proxy",
           "search", "shutdown", "write_report"]


def __getattr__(name: str):
    if name == "write_report":  # lrsearch.report imports plotly, matplotlib and pandas
        from lrsearch.report import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
