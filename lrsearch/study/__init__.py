"""A study: a study file or a study defined in Python (`define_study`), loaded and checked,
with user code contained (`user_code`); the data forms `model.fit` takes (`load`); the
direction of the objective; which stored study a command reads (`resolve_study`) and the
study files of a folder (`list_studies`)."""

from lrsearch.study._reference import StudyRef, list_studies, resolve_study
from lrsearch.study.data import load
from lrsearch.study._study_file import (MAX_SEED, PRUNERS, Settings, Study, check_name, define_study, file_stem,
                                        load_study, pickle_study, problem_of, unpickle_study, user_code)

__all__ = ["MAX_SEED", "PRUNERS", "Settings", "Study", "StudyRef", "check_name", "define_study", "file_stem",
           "list_studies", "load", "load_study", "pickle_study", "problem_of", "resolve_study", "unpickle_study",
           "user_code"]
