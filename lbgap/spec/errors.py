"""Spec errors reported as ``file:line: field.path: message``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SpecIssue", "SpecError"]


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a study file."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


class SpecError(Exception):
    """A study file that cannot be used; holds every problem found."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        # keep order, drop exact repeats
        seen: set[SpecIssue] = set()
        self.issues = [i for i in issues if not (i in seen or seen.add(i))]
        super().__init__("\n".join(str(i) for i in self.issues))
