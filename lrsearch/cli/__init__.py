"""The `lrsearch` command: parse arguments, call the library, map errors to exit codes."""

from lrsearch.cli._main import COMMANDS, SEARCH_STACK, main

__all__ = ["COMMANDS", "SEARCH_STACK", "main"]
