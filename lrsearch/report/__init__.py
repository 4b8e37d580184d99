"""The report folder of a study: each figure as an interactive HTML page (plotly, the
pages sharing one plotly.min.js in the folder) and a PNG (matplotlib), `trials.csv` and
`summary.md`; and the range test's curve.

`_data` computes what the figures show, `_html` and `_png` draw it, `_summary` writes the
Markdown, `_folder` says where it goes. Nothing here imports TensorFlow; plotly,
matplotlib and pandas are imported on first use of a name that needs them.
"""

from __future__ import annotations

import importlib

#: Name -> the module that holds it (`html` and `png` are the figure modules themselves).
_MODULES = {"check_writable": "_folder", "report_folder": "_folder", "collect": "_data", "importance": "_data",
            "pruning_reasons": "_data", "trials_frame": "_data", "save_curve": "_range_test_curve",
            "write_report": "_write", "write_report_for": "_write", "html": "_html", "png": "_png"}

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name in ("html", "png"):
        return importlib.import_module(f"{__name__}.{_MODULES[name]}")
    if name in _MODULES:
        return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
