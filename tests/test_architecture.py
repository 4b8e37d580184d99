"""The package's shape, read from its source: layers that import only downwards, no import
circle, modules of a readable size, and private API of Keras, TensorFlow, Optuna and
optuna-dashboard touched in `lrsearch/internals/` alone (see ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lrsearch"
#: The layers, lowest first: a module imports from its own layer or from lower ones only.
LAYERS = ["_version", "errors", "internals", "devices", "lr", "storage", "study", "results", "options", "training",
          "rangetest", "export", "report", "dashboard", "workers", "run", "cli", "__init__", "__main__"]
#: Packages whose private names only lrsearch/internals/ may use.
GUARDED = ("keras", "tensorflow", "tf", "optuna", "optuna_dashboard")
#: Private-looking names of the standard library that are public API.
STDLIB_PUBLIC = {("os", "_exit"), ("sys", "_getframe")}
MAX_LINES = 400
MAX_TOP_LEVEL_MODULES = 8


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The lrsearch modules that `module` (at `path`) imports, at its top or inside
    functions, with the other packages whose `__init__` such an import runs."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found |= {name if name in known else node.module for name in names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    found = {name for name in found if name in known}
    parents = {".".join(name.split(".")[:i]) for name in found for i in range(2, name.count(".") + 1)}
    return (found | {parent for parent in parents if not module.startswith(parent + ".")}) - {module}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {module: imports(module, path, known) for module, path in known.items()}


def test_every_module_belongs_to_a_layer():
    assert {layer(module) for module in modules()} <= set(LAYERS)


def test_imports_go_down_the_layers_and_the_library_never_imports_the_cli(graph):
    upward = sorted(f"{module} imports {target}" for module, targets in graph.items() for target in targets
                    if LAYERS.index(layer(target)) > LAYERS.index(layer(module)))
    assert upward == []


def test_no_import_circle(graph):
    """Tarjan's strongly connected components: every one a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                circles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert circles == []


def test_modules_stay_small_and_few_stand_at_the_top():
    long = {str(path.relative_to(PACKAGE)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(path: Path) -> list[str]:
    """Private names of other objects that `path` reads, and private modules it imports."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and (owner.id in ("self", "cls") or (owner.id, node.attr) in STDLIB_PUBLIC):
                continue
            found.append(f"{where} .{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1:
            name = node.args[1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and private(name.value):
                found.append(f"{where} {node.func.id}(..., {name.value!r})")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] in GUARDED and any(private(p) or p in ("src", "python") for p in parts[1:]):
                    found.append(f"{where} import {name}")
    return found


def private_overrides(module) -> list[str]:
    """Methods of `module`'s classes that override a private method of a Keras,
    TensorFlow, Optuna or optuna-dashboard class, unless lrsearch.internals defines it."""
    found = []
    for cls in vars(module).values():
        if not isinstance(cls, type) or cls.__module__ != module.__name__:
            continue
        guarded = [base for base in cls.__mro__[1:] if base.__module__.split(".")[0] in GUARDED]
        found += [f"{cls.__name__}.{name} overrides {base.__name__}'s" for name, value in vars(cls).items()
                  if private(name) and not name.startswith("_abc_")
                  and not str(getattr(value, "__module__", None)).startswith("lrsearch.internals")
                  for base in guarded[:1] if any(name in vars(b) for b in guarded)]
    return found


def test_private_api_of_keras_tensorflow_and_optuna_only_in_internals():
    found = [f"{path.relative_to(PACKAGE)} {use}" for path in sorted(PACKAGE.rglob("*.py"))
             if path.parent.name != "internals" for use in private_uses(path)]
    assert found == []


def test_no_class_overrides_a_private_method_of_keras_tensorflow_or_optuna():
    found = [f"{name}: {use}" for name in modules() if layer(name) != "internals" and name != "lrsearch.__main__"
             for use in private_overrides(importlib.import_module(name))]
    assert found == []


@pytest.mark.parametrize("source, caught", [
    ("import keras\nkeras.layers._helper()\n", True),
    ("def f(storage):\n    return getattr(storage, '_backend', None)\n", True),
    ("from tensorflow.python.ops import array_ops\n", True),
    ("import os\nclass C:\n    def _mine(self):\n        return self._x\n\nos._exit(0)\n", False),
])
def test_the_private_api_check_catches_each_form(tmp_path, source, caught):
    path = tmp_path / "module.py"
    path.write_text(source)
    assert bool(private_uses(path)) is caught


@pytest.mark.parametrize("source, caught", [
    ("import keras\nclass C(keras.callbacks.ReduceLROnPlateau):\n    def _set_monitor_op(self):\n        pass\n", True),
    ("from optuna.storages import BaseStorage\nfrom optuna.storages._heartbeat import BaseHeartbeat as Beat\n"
     "class S(BaseStorage, Beat):\n    def _get_stale_trial_ids(self, i):\n        return []\n", True),
    ("import keras\nclass C(keras.callbacks.Callback):\n    def _mine(self):\n        return 1\n", False),
])
def test_the_override_check_catches_a_private_override(tmp_path, source, caught):
    path = tmp_path / "overriding.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("overriding", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert bool(private_overrides(module)) is caught
