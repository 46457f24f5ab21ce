"""lbgap: reproducible studies of the large-batch generalization gap."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Marker for hook implementations: ``@lbgap.hookimpl``.
hookimpl = pluggy.HookimplMarker("lbgap")

__all__ = ["hookimpl", "__version__"]
