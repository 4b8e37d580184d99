"""What the plotly and matplotlib drawings share, so that both show a report alike."""

#: Line and marker colour of a trial by its state.
STATE_COLORS = {"COMPLETE": "#1f77b4", "PRUNED": "#b0b0b0", "FAIL": "#d62728", "RUNNING": "#2ca02c"}
#: Where a parameter that does not apply to a trial sits on its axis, below the values.
MISSING_LABEL = "n/a"
#: The learning curves of the top trials (`report.data.TOP_TRIALS`), best first, and of the others.
TOP_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
OTHER_COLOR = "#c0c0c0"


def top_label(rank: int, number: int) -> str:
    """How a legend names the top trial of `rank` (from 0)."""
    return f"#{rank + 1}: trial {number}"
