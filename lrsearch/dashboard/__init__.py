"""optuna-dashboard for a study: the server with lrsearch's importance, and the notes and
charts lrsearch writes for each trial."""

from lrsearch.dashboard._notes import LiveNotes, annotate
from lrsearch.dashboard._serve import (DEFAULT_HOST, DEFAULT_PORT, ReportImportance, dashboard_url, serve,
                                      serve_study, write_notes)

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "LiveNotes", "ReportImportance", "annotate", "dashboard_url", "serve",
           "serve_study", "write_notes"]
