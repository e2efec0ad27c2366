"""Retake the dashboard screenshots in this folder: runs the dashboard's browser tests against a real local farm
(SQLite), which save one full-page PNG per page here. Needs Debian's chromium (`make test` installs it as root).

    .venv/bin/python docs/screenshots/make.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

if __name__ == "__main__":
    env = {**os.environ, "EDGEFARM_SCREENSHOTS": str(HERE)}
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "tests/dashboard", "-q", "-k", "sqlite",
                              "-p", "no:cacheprovider"], cwd=ROOT, env=env))
