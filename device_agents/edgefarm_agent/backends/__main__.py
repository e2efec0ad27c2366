"""`python -m edgefarm_agent.backends JOB_DIR`: run one job in this fresh process (see runner.py)."""

import sys
from pathlib import Path

from edgefarm_agent.backends.runner import main

sys.exit(main(Path(sys.argv[1])))
