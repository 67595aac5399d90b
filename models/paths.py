"""Where bundled resources live (data sets, pretrained models, licences)."""
from __future__ import annotations

import os
from pathlib import Path

#: The repository's ``resources/`` folder; ``DPM_RESOURCES`` overrides it.
RESOURCES = Path(os.environ.get("DPM_RESOURCES", Path(__file__).resolve().parent.parent / "resources"))
DATA_DIR = RESOURCES / "data"
MODELS_DIR = RESOURCES / "models"
