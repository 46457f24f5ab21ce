"""``lbgap report``: figures and a markdown summary of a finished study."""

from .make import FigureFailure, Report, build_report, make_report

__all__ = ["make_report", "build_report", "Report", "FigureFailure"]
