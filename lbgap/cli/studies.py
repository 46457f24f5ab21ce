"""The study files shipped with lbgap (``lbgap study list``, ``study copy``, a study run by name).

In a source checkout (an editable install) they are the repository's ``studies/`` folder; the
wheel, built from it, installs them as data files to ``<prefix>/share/lbgap/studies`` (the
virtual environment's folder, or the user's with ``pip install --user``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["ShippedStudy", "shipped_dir", "shipped_studies", "find_shipped"]

_PACKAGE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ShippedStudy:
    name: str
    path: Path
    reproduces: str
    scale: str  # "paper" or "CPU"


def _candidates() -> list[Path]:
    import site
    import sys
    import sysconfig

    out = []
    if (_PACKAGE.parent / "pyproject.toml").is_file():  # a source checkout
        out.append(_PACKAGE.parent / "studies")
    # the installation prefix of the package: site-packages is <prefix>/lib/pythonX.Y/site-packages
    # (<prefix>/Lib/site-packages on Windows)
    for up in (3, 2):
        if len(_PACKAGE.parents) > up:
            out.append(_PACKAGE.parents[up] / "share" / "lbgap" / "studies")
    for prefix in (sysconfig.get_path("data"), sys.prefix, getattr(site, "USER_BASE", None)):
        if prefix:
            out.append(Path(prefix) / "share" / "lbgap" / "studies")
    return out


def shipped_dir() -> Optional[Path]:
    """The folder of the shipped study files, or None if this installation has none."""
    for folder in _candidates():
        try:
            if folder.is_dir() and any(folder.glob("*.yaml")):
                return folder
        except OSError:
            continue
    return None


def find_shipped(name: str) -> Optional[Path]:
    """The shipped study file called ``name`` (``hoffer_regime`` or ``hoffer_regime.yaml``)."""
    folder = shipped_dir()
    if folder is None or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        return None
    path = folder / (name if name.endswith(".yaml") else f"{name}.yaml")
    return path if path.is_file() else None


def _header(path: Path, depth: int = 0) -> dict:
    """The top-level settings of a study file, those it leaves out taken from the file it extends."""
    from ..spec.yamlio import YAMLSyntaxError, load_yaml

    try:
        data = load_yaml(path).data
    except (OSError, YAMLSyntaxError):
        return {}
    parent = data.get("extends")
    if isinstance(parent, str) and depth < 8:
        return {**_header(path.parent / parent, depth + 1), **data}
    return data


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def shipped_studies() -> list[ShippedStudy]:
    """Every shipped study, by name."""
    folder = shipped_dir()
    if folder is None:
        return []
    out = []
    for path in sorted(folder.glob("*.yaml")):
        head = _header(path)
        reproduces = _one_line(head.get("reproduces") or head.get("description") or "")
        words = f"{path.stem} {reproduces} {_one_line(head.get('description') or '')}".lower()
        scale = "paper" if ("_paper" in path.stem or "paper scale" in words) else "CPU"
        out.append(ShippedStudy(path.stem, path, reproduces, scale))
    return out
