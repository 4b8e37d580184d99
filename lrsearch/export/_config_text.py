"""A configuration file's text, read and parsed into a checked document: whatever a file
holds, `read` and `parse` give a document of JSON's types (mappings with string keys,
lists, strings, finite numbers, booleans, null) or raise ConfigError saying what is wrong,
and do so quickly: a file too large, binary, nested too deep, with a number Python will
not read, a key given twice, or YAML aliases that repeat a part into billions is refused.
YAML is read with PyYAML's safe loader, which never executes code.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from pathlib import Path
from typing import Any, Iterator

from lrsearch.lr import ConfigError

#: What a configuration file may be: far more than any `--top K` export holds (a
#: configuration is a few KB and a few dozen values, nested about 6 deep), far less than
#: what takes Python long to read, or a YAML file whose aliases repeat parts into billions.
MAX_BYTES, MAX_VALUES, MAX_DEPTH = 16 * 2**20, 1_000_000, 64
#: Digits of the longest whole number read (Python refuses to read numbers of thousands).
MAX_DIGITS = 40


def read(path: Path) -> str:
    """The file's text; ConfigError if it cannot be read, is too large or is not text."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("no such file.") from None
    except IsADirectoryError:
        raise ConfigError("is a directory; give the JSON or YAML file `lrsearch export` wrote.") from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror or exc}.") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"is larger than {MAX_BYTES // 2**20} MB, far more than a configuration file holds; "
                          f"give the file `lrsearch export` wrote.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"is not a text file (byte {exc.start} is not UTF-8); give the JSON or YAML file "
                          f"`lrsearch export` wrote.") from None


def parse(text: str, path: Path) -> Any:
    """The document of a file's text, its values checked (`_check_values`); ConfigError."""
    if not text.strip():
        raise ConfigError("the file is empty.")
    try:
        suffix = path.suffix.lower()
        as_yaml = suffix in (".yaml", ".yml") or suffix != ".json" and not text.lstrip().startswith("{")
        document = _parse_yaml(text) if as_yaml else _parse_json(text)
    except RecursionError:
        raise ConfigError("not a configuration: it nests deeper than Python reads.") from None
    _check_values(document)
    return document


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_mapping, parse_constant=_non_finite, parse_int=_whole)
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        raise ConfigError(f"not valid JSON{' (the file looks truncated)' if cut else ''}: "
                          f"{exc.msg.removesuffix(' at')} at line {exc.lineno} column {exc.colno}.") from None


def _parse_yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_yaml_loader())
    except ConfigError:
        raise
    except yaml.YAMLError as exc:
        problem, mark = getattr(exc, "problem", None) or str(exc), getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"not valid YAML: {' '.join(problem.split())}{where}.") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a value YAML's own types refuse, e.g. a 13th month
        raise ConfigError(f"not valid YAML: {exc}.") from None


def _mapping(pairs: list[tuple[Any, Any]]) -> dict:
    """A JSON object or YAML mapping as a dict; ConfigError on a key given twice."""
    document = {}
    for key, value in pairs:
        if key in document:
            raise ConfigError(f"the key {key!r} appears twice in one mapping; keep one.")
        document[key] = value
    return document


def _non_finite(name: str) -> Any:
    raise ConfigError(f"holds {name}, which is not a number a configuration holds (every number is finite).")


def _whole(text: str) -> int:
    """A JSON whole number; ConfigError for one too long for Python to read."""
    if len(text) > MAX_DIGITS:
        raise ConfigError(f"holds a whole number of {len(text)} digits ({text[:8]}...), far too large for a setting.")
    return int(text)


@functools.cache
def _yaml_loader() -> type:
    """PyYAML's safe loader, reading mappings with `_mapping` and whole numbers with `_whole`'s limit."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if not isinstance(node, yaml.MappingNode):
                return super().construct_mapping(node, deep)
            self.flatten_mapping(node)  # merge keys (<<) as PyYAML reads them
            pairs = [(self.construct_object(key, deep), self.construct_object(value, deep))
                     for key, value in node.value]
            try:
                return _mapping(pairs)
            except TypeError:  # an unhashable key
                raise ConfigError(f"a mapping at line {node.start_mark.line + 1} has a list or a mapping as "
                                  f"a key; keys are names.") from None

        def construct_yaml_int(self, node):
            _whole(self.construct_scalar(node).replace("_", ""))
            return super().construct_yaml_int(node)

    Loader.add_constructor("tag:yaml.org,2002:map", lambda loader, node: loader.construct_mapping(node, deep=True))
    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    return Loader


def _check_values(document: Any) -> None:
    """ConfigError naming the first value that no export writes: a key that is not a
    string, a number that is not finite or beyond 64 bits, a type beyond JSON's; or a
    document nested deeper than MAX_DEPTH or holding more than MAX_VALUES values (YAML
    aliases can repeat a part without writing it again). Visits at most MAX_VALUES."""
    stack = [iter([((), document)])]
    for count in itertools.count(1):
        while stack and (visit := next(stack[-1], None)) is None:
            stack.pop()
        if not stack:
            return
        if count > MAX_VALUES:
            raise ConfigError(f"holds more than {MAX_VALUES:,} values (YAML aliases that repeat a part?); a "
                              f"configuration holds a few dozen.")
        where, value = visit
        if isinstance(value, (dict, list)):
            if len(where) >= MAX_DEPTH:
                raise ConfigError(f"nests deeper than {MAX_DEPTH} levels; a configuration nests a few.")
            stack.append(_children(where, value))
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        elif isinstance(value, int):
            if abs(value) >= 2**63:
                raise ConfigError(f"{_where(where)} is a whole number of {len(str(abs(value)))} digits, far too "
                                  f"large for a setting.")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ConfigError(f"{_where(where)} is {value}, not a finite number.")
        else:
            raise ConfigError(f"{_where(where)} is a YAML {type(value).__name__} ({str(value)[:40]!r}); a "
                              f"configuration holds strings, numbers, true/false, null, lists and mappings.")


def _children(where: tuple, value: dict | list) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, list):
        yield from (((*where, index), item) for index, item in enumerate(value))
        return
    for key, item in value.items():
        if not isinstance(key, str):
            raise ConfigError(f"{_where(where)} has the key {key!r}, which is not a string; keys are names.")
        yield (*where, key), item


def _where(keys: tuple) -> str:
    """Dotted keys and [index]es, as the messages of `_config_file` name a place; "the top level" for ()."""
    text = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in keys).lstrip(".")
    return text or "the top level"
