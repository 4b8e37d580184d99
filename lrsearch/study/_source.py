"""A study file's source, checked before it is imported: Python text, not binary data nor
text in an encoding Python would not read it in (`check_source`); and what its source says
without running it (`outline`)."""

from __future__ import annotations

import ast
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


def syntax_error(path: Path, exc: SyntaxError) -> StudyFileError:
    """What a syntax error in the study file at `path` is, as its reader raises it."""
    where = f" at line {exc.lineno}" if exc.lineno else ""
    return StudyFileError(path, f"syntax error{where}: {exc.msg}.")


def outline(path: Path) -> str | None:
    """The description of the study file at `path` (its docstring's first paragraph, on one
    line), read from its source without running it; None if it defines neither data() nor
    build_model() at its top level, as a module that is no study file. StudyFileError where
    the source is no Python text, does not parse, or lacks one of the two."""
    check_source(path)
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except SyntaxError as exc:
        raise syntax_error(path, exc) from None
    missing = {"data", "build_model"} - _top_level_names(tree)
    if len(missing) == 2:
        return None
    if missing:
        raise StudyFileError(path, f"defines no {missing.pop()}() function.")
    return " ".join((ast.get_docstring(tree) or "").strip().split("\n\n")[0].split())


def _top_level_names(tree: ast.Module) -> set[str]:
    """The names a module's top-level statements bind: functions, classes, imports, assignments."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
    return names
