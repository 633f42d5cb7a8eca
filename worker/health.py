"""Health check of a worker container: exit 0 while the worker's sweep thread reports in.

`python -m worker.health` succeeds if the sweep (worker/sweep.py) wrote its alive file within
three sweep intervals: the process is up, its threads run and the database answers. A solo-pool
worker cannot answer `celery inspect ping` while it runs a job, hence a file.
"""

from __future__ import annotations

import sys
import time

from store.config import get_settings
from worker.sweep import ALIVE_FILE, sweep_interval


def main() -> int:
    limit = 3 * sweep_interval(get_settings()) + 10
    try:
        age = time.time() - ALIVE_FILE.stat().st_mtime
    except FileNotFoundError:
        sys.stderr.write(f"unhealthy: {ALIVE_FILE} not written yet\n")
        return 1
    if age > limit:
        sys.stderr.write(f"unhealthy: last sweep {age:.0f} s ago (limit {limit:.0f} s)\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
