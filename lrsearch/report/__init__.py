"""The report folder of a study: each figure as an interactive HTML page (plotly, the
pages sharing one plotly.min.js in the folder) and a PNG (matplotlib), `trials.csv` and
`summary.md`; and the range test's curve.

`_data` computes what the figures show, `_html` and `_png` draw it, `_summary` writes the
Markdown. Nothing here imports TensorFlow.
"""

from lrsearch.report import _html as html  # the figures as plotly figures
from lrsearch.report import _png as png  # the figures as matplotlib figures
from lrsearch.report._data import collect, importance, pruning_reasons, trials_frame
from lrsearch.report._range_test_curve import save_curve
from lrsearch.report._write import write_report, write_report_for

__all__ = ["collect", "html", "png", "importance", "pruning_reasons", "save_curve", "trials_frame", "write_report",
           "write_report_for"]
