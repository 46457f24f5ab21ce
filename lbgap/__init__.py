"""lbgap: reproducible studies of the large-batch generalization gap.

Plugin authors import from :mod:`lbgap.api`, the public API; the other modules are private.
``lbgap.hookimpl`` is kept as an alias of ``lbgap.api.hookimpl``.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Marker for hook implementations: ``@lbgap.hookimpl``.
hookimpl = pluggy.HookimplMarker("lbgap")

__all__ = ["hookimpl", "__version__"]
