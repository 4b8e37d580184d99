"""List the study files in a folder with their one-line descriptions."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", default="studies", help="folder of study files (default: studies)")


def main(args: argparse.Namespace) -> int:
    from lrsearch.errors import UsageError
    from lrsearch.errors import StudyFileError
    from lrsearch.studyfile import load_study

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(f"no folder {str(folder)!r}.")
    files = sorted(folder.glob("*.py"))
    if not files:
        print(f"No study files in {folder}.")
        return 0
    width = max(len(str(path)) for path in files)
    for path in files:
        try:
            study = load_study(path)
            text = study.description or "(no description: add a module docstring)"
        except StudyFileError as exc:
            text = f"(broken: {exc.problem})"
        print(f"{str(path):<{width}}  {text}")
    return 0
