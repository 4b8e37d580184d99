"""lrsearch: find the learning-rate settings of a Keras model with Optuna.

Importing this package is light: it needs neither TensorFlow nor Optuna. The study-file
building blocks (`Settings`, `Space`), `load_config` and `retrain` live here; everything
that trains imports TensorFlow when it is used.
"""

from lrsearch.config import LRConfig
from lrsearch.configfile import load_config
from lrsearch.retraining import retrain
from lrsearch.space import Space
from lrsearch.studyfile import Settings

__version__ = "0.1.0"

__all__ = ["LRConfig", "Settings", "Space", "__version__", "load_config", "retrain"]
