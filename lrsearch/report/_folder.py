"""Where a report goes, and whether it can be written there: light, so that a search checks
its report folder before it starts without importing the figures' libraries."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from lrsearch.errors import UsageError, writing
from lrsearch.study import file_stem


def report_folder(study_name: str, where: bool | str | os.PathLike | None = None) -> Path:
    """Where the report of `study_name` goes: `where` if it names a folder, else
    ./lrsearch-report-STUDY_NAME. UsageError for an empty path, and for "-": a report is a
    folder of files, which cannot go to standard output as an export can."""
    if isinstance(where, (str, os.PathLike)):
        if not str(where).strip() or os.fspath(where) == "-":
            raise UsageError(f"the report folder is {'-' if os.fspath(where) == '-' else 'an empty path'}; a report "
                             f"is a folder of files: name one, or leave it out for "
                             f"./lrsearch-report-{file_stem(study_name)}.")
        return Path(where)
    return Path(f"lrsearch-report-{file_stem(study_name)}")


def check_writable(folder: str | os.PathLike) -> None:
    """WriteError unless files can be written in `folder` (created if needed, and removed
    again if this made it): a search checks its report folder before it starts."""
    folder, made = Path(folder), []
    probe = folder / f".lrsearch-write-check-{uuid.uuid4().hex[:8]}"
    try:
        with writing(folder):
            made = [parent for parent in (folder, *folder.parents) if not parent.exists()]
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
    finally:
        for parent in made:  # innermost first
            try:
                parent.rmdir()
            except OSError:
                break
