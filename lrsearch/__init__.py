"""lrsearch: find the learning-rate settings of a Keras model with Optuna.

Importing this package is light: it needs neither TensorFlow nor Optuna. Here are what the
README documents: the study building blocks (`Settings`, `Space`, `define_study`), the
search (`search`, `join`, `SearchResult`), `load_config`, `LRConfig` and `retrain`, and the
errors they raise (`lrsearch.errors`); what trains imports TensorFlow when it is used.
"""

from lrsearch.config import LRConfig
from lrsearch.configfile import load_config
from lrsearch.errors import LrsearchError, SearchStopped, StorageError, StudyFileError, UsageError
from lrsearch.retraining import retrain
from lrsearch.searching import SearchResult, join, search
from lrsearch.space import Space
from lrsearch.studyfile import Settings, define_study

__version__ = "0.1.0"

__all__ = ["LRConfig", "LrsearchError", "SearchResult", "SearchStopped", "Settings", "Space", "StorageError",
           "StudyFileError", "UsageError", "__version__", "define_study", "join", "load_config", "retrain",
           "search"]
