"""Where the project's fixtures (config templates, gate rules, topologies, seed messages) live."""

from __future__ import annotations

import os
from pathlib import Path

ENV_FIXTURES = "LOADTEST_FIXTURES"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def fixtures_dir() -> Path:
    """The fixtures folder: env LOADTEST_FIXTURES, else the checkout this package runs from."""
    override = os.environ.get(ENV_FIXTURES)
    return Path(override) if override else PROJECT_ROOT / "fixtures"
