"""``python -m models.cli``: the same as ``dpm``."""
import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
