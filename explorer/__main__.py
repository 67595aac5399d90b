"""``python -m explorer``: the same as the ``dpm-explorer`` command."""
from .app import main

raise SystemExit(main())
