"""``python -m bench.curvature``: see :mod:`bench.curvature.run`."""

from .run import main

raise SystemExit(main())
