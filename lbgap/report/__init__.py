"""``lbgap report``: figures and a markdown summary of a finished study."""

from .make import make_report

__all__ = ["make_report"]
