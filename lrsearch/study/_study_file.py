"""Load a study file by path, or define a study in Python, and check what it provides.

A study file is plain Python. It defines:

- ``data()``: ``((x_train, y_train), (x_val, y_val))`` in-memory arrays (or dicts and
  lists of them, with optional sample weights), or ``(train_dataset, val_dataset)``
  (see `lrsearch.study.data`);
- ``build_model(trial)`` (or ``build_model()``): a new, *uncompiled* Keras model;
- ``settings = lrsearch.Settings(...)``: loss, metrics, objective and the rest;
- optionally ``space = lrsearch.Space(...)`` (or a dict of its options) to narrow or
  fix parts of the learning-rate search;
- optionally ``callbacks(trial)`` (or ``callbacks()``): a list of Keras callbacks that run
  beside lrsearch's in every training (see `lrsearch.training._trial.TrialRunner.study_callbacks`).

lrsearch owns the optimizer, the schedule, the learning-rate callbacks and ``compile``.
Loading imports the file but neither calls ``data()`` nor builds a model; the checks
that need TensorFlow run in :func:`lrsearch.training._trial.preflight`. The file's code runs
inside `user_code`, which turns its errors and exits into StudyFileErrors.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib.util
import inspect
import os
import re
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

from lrsearch.errors import StudyFileError, StudyFileExit, UsageError, plain
from lrsearch.lr import Space, SpaceError
from lrsearch.study import _dtype_policy as policies
from lrsearch.study._directions import close_names, direction_of
from lrsearch.study._source import check_source, syntax_error

#: Optuna pruners `Settings.pruner` may name (`lrsearch.training._pruning.make_pruner`).
PRUNERS = ("hyperband", "median")


#: The largest seed: Keras takes seeds below 2**32, and a trial trains on the seed plus its
#: number, a confirmation training on more (`results.SEED_OFFSET`).
MAX_SEED = 2**31 - 1

#: Study files are imported as modules named this plus the file's stem.
STUDY_MODULE_PREFIX = "lrsearch_study_"


class _ExitCalled(BaseException):
    """Raised in place of `os._exit` in a thread running the study file's code."""

    def __init__(self, code: Any) -> None:
        super().__init__(code)
        self.code = code


_in_user_code = threading.local()  # .depth: the `user_code` blocks this thread is in
_exit_guard_lock = threading.Lock()
_real_exit: Callable[[int], Any] | None = None  # os._exit, once the guard replaced it


def _guard_exit() -> None:
    """Replace `os._exit`, once for the process, by `_guarded_exit`: threads may run
    study code at once, so a per-call swap would refuse or allow exits in other threads."""
    global _real_exit
    if _real_exit is not None:
        return
    with _exit_guard_lock:
        if _real_exit is None:
            _real_exit = os._exit
            os._exit = _guarded_exit


def _guarded_exit(code: Any = 0) -> None:
    """`os._exit`, refused in a thread inside `user_code`."""
    if getattr(_in_user_code, "depth", 0):
        raise _ExitCalled(code)
    _real_exit(code)


@contextlib.contextmanager
def user_code(path: str | os.PathLike, what: str, passthrough: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Run the study file's `what` (``"data()"``...): what it raises becomes a
    StudyFileError naming the file, `what` and the line; `sys.exit` and `os._exit` (in
    this thread) become StudyFileExit. Exceptions of `passthrough` types pass unchanged."""
    _guard_exit()
    _in_user_code.depth = getattr(_in_user_code, "depth", 0) + 1
    try:
        yield
    except passthrough:
        raise
    except StudyFileError:
        raise
    except _ExitCalled as exc:
        raise StudyFileExit(path, f"{what} called os._exit({exc.code!r}); a study file must not end the "
                                  f"process. Raise an exception instead.") from None
    except SystemExit as exc:
        raise StudyFileExit(path, f"{_line_in(path, exc)}{what} called sys.exit({exc.code!r}); a study file must "
                                  f"not end the process. Raise an exception instead.") from None
    except Exception as exc:
        raise StudyFileError(path, f"{_line_in(path, exc)}{what} raised {problem_of(exc)}") from exc
    finally:
        _in_user_code.depth -= 1


def problem_of(exc: BaseException) -> str:
    """What `exc` says, for a message: a StudyFileError's problem, else its type and text
    on one line, without the terminal colour codes Keras puts in some."""
    if isinstance(exc, StudyFileError):
        return exc.problem
    return " ".join(plain(f"{type(exc).__name__}: {exc}").split())


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a study trains for and how long.

    `objective` is a key of the Keras logs (``val_accuracy``, ``val_loss``...);
    `direction` defaults to the way a Keras loss or metric of that name improves
    (`lrsearch.study._directions`); for any other objective it must be given.
    `stall_epochs` is the window after which a trial whose objective has not moved is
    pruned as stalled (default: a tenth of the epochs, at least 5). `keep_compiled`
    lets a worker load a trial into a compiled model it kept from an earlier trial of
    the same architecture (see `lrsearch.training._kept_models`); turn it off if `build_model` varies
    something that the layers' Keras configs do not show. `check_finite` refuses
    in-memory data holding NaN or inf before the first trial. `pruner` adds Optuna's
    ``"hyperband"`` or ``"median"`` pruner, which stops trials that rank below their
    peers at the same epoch, to the diverged and stalled stops (default: none).
    """

    loss: Any
    metrics: tuple = ()
    objective: str = "val_loss"
    direction: str | None = None
    epochs: int = 20
    batch_size: int = 32
    n_trials: int = 50
    seed: int = 0
    stall_epochs: int | None = None
    keep_compiled: bool = True
    check_finite: bool = True
    pruner: str | None = None

    def __post_init__(self) -> None:
        metrics = self.metrics
        object.__setattr__(self, "metrics", tuple(metrics) if isinstance(metrics, (list, tuple)) else
                           metrics if isinstance(metrics, dict) else () if metrics is None else (metrics,))
        if not isinstance(self.objective, str) or not self.objective:
            raise ValueError(f"objective must be the name of a logged metric, but got {self.objective!r}.")
        if self.direction is None:
            known = direction_of(self.objective)
            if known is None:
                typo = close_names(self.objective)
                raise ValueError(f"lrsearch does not know whether {self.objective!r} should be minimized or "
                                 f"maximized; add direction=\"minimize\" or direction=\"maximize\" to the Settings"
                                 + (f" (or did you mean {' or '.join(map(repr, typo))}?)" if typo else "") + ".")
            object.__setattr__(self, "direction", known)
        if self.direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', but got {self.direction!r}.")
        for name in ("epochs", "batch_size", "n_trials"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, but got {value!r}.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED} (2**31 - 1), but got {self.seed!r}.")
        if self.stall_epochs is not None and (not isinstance(self.stall_epochs, int) or self.stall_epochs < 1):
            raise ValueError(f"stall_epochs must be a whole number >= 1, but got {self.stall_epochs!r}.")
        for name in ("keep_compiled", "check_finite"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, but got {getattr(self, name)!r}.")
        if self.pruner is not None and self.pruner not in PRUNERS:
            raise ValueError(f"pruner must be None (the diverged and stalled stops only) or one of "
                             f"{', '.join(map(repr, PRUNERS))}, but got {self.pruner!r}.")

    @property
    def compile_metrics(self) -> list | dict:
        """`metrics` as `model.compile` takes them: a list, or a dict per output."""
        return dict(self.metrics) if isinstance(self.metrics, dict) else list(self.metrics)

    @property
    def stall_window(self) -> int:
        """`stall_epochs`, else a tenth of `epochs` (a run's, where it sets them), at least 5."""
        return self.stall_epochs or max(5, self.epochs // 10)


@dataclasses.dataclass(frozen=True)
class Study:
    """A loaded study file, or a study defined in Python (`define_study`)."""

    path: Path
    name: str
    description: str
    settings: Settings
    space: Space
    data: Callable[[], Any]
    builder: Callable[..., Any]
    callbacks: Callable[..., Any] | None = None
    in_python: bool = False  # made by `define_study`, not loaded from a file
    dtype_policy: str | None = None  # Keras' global policy its file set (`_dtype_policy`), if not the default

    def with_seed(self, seed: int) -> "Study":
        """The same study with settings.seed = `seed` (`lrsearch run --seed`)."""
        return dataclasses.replace(self, settings=dataclasses.replace(self.settings, seed=seed))

    def build_model(self, trial: Any, passthrough: tuple[type[BaseException], ...] = ()) -> Any:
        """Call the file's builder, passing the trial if it takes one (see `user_code`)."""
        with user_code(self.path, "build_model()", passthrough), policies.building_under(self.dtype_policy):
            return self.builder(trial) if _takes_argument(self.builder) else self.builder()

    def call_callbacks(self, trial: Any) -> Any:
        """Call the file's callbacks(), passing the trial if it takes one; [] without one."""
        if self.callbacks is None:
            return []
        with user_code(self.path, "callbacks()"):
            return self.callbacks(trial) if _takes_argument(self.callbacks) else self.callbacks()

    def load_data(self) -> Any:
        """Call the file's data() (see `user_code`)."""
        with user_code(self.path, "data()"):
            return self.data()


def load_study(path: str | os.PathLike) -> Study:
    """Import the study file at `path` and check its parts; raise StudyFileError."""
    path = Path(path)
    if path.is_dir():
        found = ", ".join(sorted(p.name for p in path.glob("*.py"))[:5])
        raise StudyFileError(path, "is a directory. Give the path of a study file" + (
            f" in it ({found})." if found else ", e.g. studies/blobs.py."))
    if not path.is_file():
        raise StudyFileError(path, "no such file. Give the path of a study file, e.g. studies/blobs.py.")
    if path.suffix != ".py":
        raise StudyFileError(path, "a study file is a Python file ending in .py.")
    module, policy = policies.set_by(lambda: _import(path))
    return _assemble(path, path.stem, describe(module), dtype_policy=policy,
                     **{part: getattr(module, part, None) for part in ("data", "build_model", "settings", "space",
                                                                       "callbacks")})


def describe(module: Any) -> str:
    """A study file's description: the first paragraph of its docstring, on one line."""
    paragraph = (inspect.getdoc(module) or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def define_study(name: str, *, data: Callable[[], Any], build_model: Callable[..., Any], settings: Settings,
                 space: "Space | dict | None" = None, callbacks: Callable[..., Any] | None = None,
                 description: str = "") -> Study:
    """A study defined in Python (a notebook cell, a script) rather than in a study file:
    the same parts a study file defines, checked the same way. `lrsearch.search` ships it
    to its worker processes with cloudpickle, functions and what they use included."""
    if "/" in check_name(name):
        raise UsageError(f"a study's name must be a non-empty string without '/', but got {name!r}.")
    return _assemble(Path(f"<study {name} defined in Python>"), name, description, data=data,
                     build_model=build_model, settings=settings, space=space, callbacks=callbacks, in_python=True,
                     dtype_policy=policies.in_use())


def check_name(name: Any) -> str:
    """`name`, a study's name in its storage; UsageError unless it is a string of more than spaces."""
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"a study's name must be a non-empty string (study_name, --study-name), but got {name!r}.")
    return name


def file_stem(name: str) -> str:
    """A study's name as part of the default names of the files and folders written for it
    in the working directory: path separators and other characters that a file name should
    not hold become "_" ("a/b" -> "a_b", "../x" -> "x")."""
    return re.sub(r"[^\w .-]+", "_", name).strip("._ ") or "study"


def _assemble(path: Path, name: str, description: str, *, data: Any, build_model: Any, settings: Any, space: Any,
              callbacks: Any, in_python: bool = False, dtype_policy: str | None = None) -> Study:
    """Check a study's parts (from a file's module or from `define_study`); StudyFileError."""
    for part, value, wanted, hint in (
            ("data", data, "callable", "Add `def data():` returning ((x_train, y_train), (x_val, y_val))."),
            ("build_model", build_model, "callable", "Add `def build_model(trial):` returning an uncompiled Keras "
                                                     "model."),
            ("settings", settings, Settings, "Add `settings = lrsearch.Settings(loss=..., objective=...)`.")):
        if wanted == "callable" and callable(value) or wanted is Settings and isinstance(value, Settings):
            continue
        kind = "a function" if wanted == "callable" else "lrsearch.Settings(...)"
        if in_python:
            raise StudyFileError(path, f"{part}= must be {kind}, but got {type(value).__name__}.")
        if value is None:
            raise StudyFileError(path, f"defines no {part + '() function' if wanted == 'callable' else '`settings`'}. "
                                       f"{hint}")
        raise StudyFileError(path, f"{part} must be {kind}, but is {type(value).__name__}. {hint}")
    if space is None:
        space = Space()
    elif isinstance(space, dict):
        try:
            space = Space.from_dict(space)
        except (SpaceError, TypeError, ValueError) as exc:
            raise StudyFileError(path, f"bad `space`: {exc}") from None
    elif not isinstance(space, Space):
        raise StudyFileError(path, f"`space` must be lrsearch.Space(...) or a dict, not {type(space).__name__}.")
    if callbacks is not None and not callable(callbacks):
        raise StudyFileError(path, f"`callbacks` must be a function, callbacks(trial), returning a list of Keras "
                                   f"callbacks, not {type(callbacks).__name__}.")
    return Study(path=path, name=name, description=description, settings=settings, space=space, data=data,
                 builder=build_model, callbacks=callbacks, in_python=in_python, dtype_policy=dtype_policy)


def pickle_study(study: Study) -> bytes | None:
    """What a worker process needs to rebuild `study`: None for a study file (which the
    worker imports by path), cloudpickle's bytes for a study defined in Python."""
    if not study.in_python:
        return None
    import cloudpickle

    for name, module in list(sys.modules.items()):  # study files, imported by path, are not importable by name
        if name.startswith(STUDY_MODULE_PREFIX):
            cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(study)
    except Exception as exc:
        raise StudyFileError(study.path, f"cannot be sent to the worker processes: pickling it raised "
                                         f"{problem_of(exc)}. Its functions must not hold open files, "
                                         f"locks or models; build those inside data() and build_model().") from None


def unpickle_study(path: str, pickled: bytes | None) -> Study:
    """The study a worker runs: the file at `path`, or the one `pickle_study` made."""
    if pickled is None:
        return load_study(path)
    import cloudpickle

    with user_code(path, "unpickling it"):
        return cloudpickle.loads(pickled)


def _import(path: Path) -> Any:
    check_source(path)
    module_name = f"{STUDY_MODULE_PREFIX}{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StudyFileError(path, "cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    if (folder := str(path.resolve().parent)) not in sys.path:
        sys.path.append(folder)  # modules beside the file import, as with `python study.py` (after installed ones)
    if _imports_tensorflow_at_load(path):
        from lrsearch.devices import import_tensorflow

        with contextlib.suppress(ImportError):  # the file's own import then says what is missing
            import_tensorflow()  # now, quietly, rather than with its start-up lines as the file imports it
    with user_code(path, "importing it"):
        try:
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            raise syntax_error(path, exc) from None
        except (SpaceError, ValueError, TypeError) as exc:  # mostly Settings(...) or Space(...) refusing a value
            raise StudyFileError(path, f"{_line_in(path, exc)}{plain(str(exc))}") from None
    return module


def _imports_tensorflow_at_load(path: Path) -> bool:
    """Whether the file imports Keras or TensorFlow when it is loaded, outside its functions."""
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (SyntaxError, ValueError, OSError):
        return False  # importing it says what is wrong
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(name.split(".")[0] in ("keras", "tensorflow") for name in names):
                return True
        pending.extend(ast.iter_child_nodes(node))
    return False


def _line_in(path: str | os.PathLike, exc: BaseException) -> str:
    path = Path(path)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(frame.filename).resolve() == path.resolve():
            return f"line {frame.lineno}: "
    return ""


def _takes_argument(func: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)
