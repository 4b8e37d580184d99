"""The winner, for use elsewhere: the exported configuration file (written by `write`, or by
`export_study` from a stored study, read by `load_config` with Keras and PyYAML alone) and
retraining a kept configuration."""

from lrsearch.export._config_file import ExportedConfig, load_config
from lrsearch.export._export import FORMATS, export_study, exported_configs, to_document, write
from lrsearch.export._retrain import RetrainError, load_model, retrain

__all__ = ["FORMATS", "ExportedConfig", "RetrainError", "export_study", "exported_configs", "load_config", "load_model",
           "retrain", "to_document", "write"]
