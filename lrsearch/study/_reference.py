"""Which stored study a command reads: a study file, or a storage and a study name
(`resolve_study`); and the study files of a folder (`list_studies`)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from lrsearch.errors import StudyFileError, UsageError
from lrsearch.storage import DEFAULT_STORAGE
from lrsearch.study._source import outline
from lrsearch.study._study_file import Study, check_name, load_study

#: What `list_studies` says of a study file without a module docstring.
NO_DESCRIPTION = "(no description: add a module docstring)"


@dataclasses.dataclass(frozen=True)
class StudyRef:
    """A stored study: its storage, its name, and the loaded study file if one was read
    (None where only the storage and name were given, or the file was not loaded)."""

    storage: str
    study_name: str
    study: Study | None = None
    path: str | None = None  # the study file's path as given, loaded or not

    def open(self, **options):
        """The Optuna study; UsageError naming the studies there if it is absent
        (`lrsearch.storage.open_study`, which takes `options`), and the study file if that
        is absent too (a mistyped path)."""
        from lrsearch.storage import NoSuchStudy, open_study

        try:
            return open_study(self.storage, self.study_name, **options)
        except NoSuchStudy as exc:
            if self.path is not None and not os.path.exists(self.path):
                raise NoSuchStudy(f"no file {self.path!r}, and {exc}") from None
            raise


def resolve_study(study_file: "str | os.PathLike | Study | None" = None, *, storage: str | None = None,
                  study_name: str | None = None, load: bool = True) -> StudyRef:
    """The study that a study file (a path or a loaded `Study`) or `study_name` names in
    `storage` (default: ./lrsearch.journal); the file is loaded if `load`. Without a name
    the file's name counts; UsageError when neither is given."""
    if study_name is not None:
        check_name(study_name)
    study = study_file if isinstance(study_file, Study) else (
        load_study(study_file) if study_file and load else None)
    name = study_name or (study.name if study else None)
    if name is None and study_file:
        name = Path(study_file).stem
    if name is None:
        raise UsageError("give a study file, or --study-name (with --storage if it is not the default).")
    path = os.fspath(study_file) if study_file and not isinstance(study_file, Study) else None
    return StudyRef(storage=os.fspath(storage or DEFAULT_STORAGE), study_name=name, study=study, path=path)


def list_studies(folder: str | os.PathLike = "studies") -> list[tuple[Path, str]]:
    """The study files (*.py defining data() or build_model()) of `folder`, sorted, each with
    its one-line description, or what is missing or broken in it, as their source says: none
    is run (a folder's scripts may do anything when imported). UsageError if the folder does
    not exist."""
    folder = Path(folder)
    if folder.is_file():
        raise UsageError(f"{str(folder)!r} is a file; give the folder that holds the study files (its folder: "
                         f"{str(folder.parent)!r}).")
    if not folder.is_dir():
        raise UsageError(f"no folder {str(folder)!r}.")
    found = []
    for path in sorted(folder.glob("*.py")):
        try:
            text = outline(path)
        except StudyFileError as exc:
            text = f"(broken: {exc.problem})"
        if text is not None:
            found.append((path, text or NO_DESCRIPTION))
    return found
