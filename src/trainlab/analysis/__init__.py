"""Explaining results: model summaries (and, as they land, reports, plots, checkpoint diffs)."""
