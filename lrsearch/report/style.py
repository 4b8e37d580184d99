"""What the plotly and matplotlib drawings share, so that both show a report alike."""

#: Line and marker colour of a trial by its state.
STATE_COLORS = {"COMPLETE": "#1f77b4", "PRUNED": "#b0b0b0", "FAIL": "#d62728", "RUNNING": "#2ca02c"}
#: Where a parameter that does not apply to a trial sits on its axis, below the values.
MISSING_LABEL = "n/a"
