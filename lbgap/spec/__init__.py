"""Study specifications: YAML 1.2 files validated by pydantic models built
from the installed plugins."""

from .errors import SpecError, SpecIssue
from .load import Cell, Study, load_study, load_study_text

__all__ = ["SpecError", "SpecIssue", "Study", "Cell", "load_study", "load_study_text"]
