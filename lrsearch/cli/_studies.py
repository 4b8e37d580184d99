"""List the study files in a folder with their descriptions (each docstring's first paragraph)."""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
from pathlib import Path

#: The narrowest a description's column is wrapped to, however narrow the terminal.
MIN_TEXT_WIDTH = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", default="studies", help="folder of study files (default: studies)")


def main(args: argparse.Namespace) -> int:
    from lrsearch.study import list_studies

    found = list_studies(args.folder)
    if not found:
        print(f"No study files in {Path(args.folder)}.")
        return 0
    columns = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    print("\n".join(table(found, columns)))
    return 0


def table(found: list[tuple[Path, str]], columns: int | None) -> list[str]:
    """The lines listing `found`: each path, then its description, wrapped at whole words
    to fit `columns` (None: one line each, as a pipe reads them)."""
    width = max(len(str(path)) for path, _ in found)
    lines = []
    for path, text in found:
        wrapped = ([text] if columns is None else
                   textwrap.wrap(text, max(MIN_TEXT_WIDTH, columns - width - 2), break_long_words=False,
                                 break_on_hyphens=False)) or [""]
        lines += [f"{str(path) if i == 0 else '':<{width}}  {line}".rstrip() for i, line in enumerate(wrapped)]
    return lines
