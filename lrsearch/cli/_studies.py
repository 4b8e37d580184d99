"""List the study files in a folder with their one-line descriptions."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", default="studies", help="folder of study files (default: studies)")


def main(args: argparse.Namespace) -> int:
    from lrsearch.study import list_studies

    found = list_studies(args.folder)
    if not found:
        print(f"No study files in {Path(args.folder)}.")
        return 0
    width = max(len(str(path)) for path, _ in found)
    for path, text in found:
        print(f"{str(path):<{width}}  {text}")
    return 0
