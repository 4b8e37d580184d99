"""A study file's source, checked before it is imported: Python text, not binary data nor
text in an encoding Python would not read it in (`check_source`)."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

from lrsearch.errors import StudyFileError


def check_source(path: Path) -> None:
    """StudyFileError unless the file at `path` can be read as Python source text."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StudyFileError(path, f"cannot be read: {exc.strerror or exc}.") from None
    if b"\0" in raw:
        raise StudyFileError(path, f"is not a Python file: it holds binary data (a NUL byte at offset "
                                   f"{raw.index(0)}). Give the path of a study file, e.g. studies/blobs.py.")
    try:
        encoding = tokenize.detect_encoding(io.BytesIO(raw).readline)[0]
    except SyntaxError:  # a first line that is not UTF-8, or a coding line Python does not know
        raise StudyFileError(path, "is not a Python file: its first lines are neither UTF-8 text nor a coding "
                                   "line naming an encoding Python knows.") from None
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise StudyFileError(path, f"is not a Python file: byte {exc.start} is not {encoding} text. Save it as "
                                   f"{encoding}, or give the path of a study file.") from None
