"""Many processes, one system (issue 19.3): the long rehearsal, five SIGKILLs or more of each kind.

    python bench/rehearsal.py [--seconds 150] [--kills 5] [--quota 500] [--seed N] [--reuse-db]

Runs the rehearsal of tests/rehearsal/fleet.py (two gunicorn web servers, two
qclusters on the Redis broker, PgBouncer in front of PostgreSQL, Redis as
broker and cache) through its test, tests/rehearsal/test_rehearsal.py, with
longer knobs: pytest-django makes the test database (test_<DATABASE_URL's>)
and its tenants, the test checks every promise, and the figures are printed
(requests, tasks, kills, maximum propagation, over-admissions). Needs
DATABASE_URL (or the embedded server), REDIS_URL (else db 15) and PgBouncer.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0, help="how long the load runs")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of a web server, and of a cluster")
    parser.add_argument("--quota", type=int, default=500, help="each tenant's API calls per day")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--reuse-db", action="store_true", help="keep the test database of an earlier run")
    args = parser.parse_args()
    env = {**os.environ, "REHEARSAL": "1", "REHEARSAL_SECONDS": str(args.seconds),
           "REHEARSAL_WEB_KILLS": str(args.kills), "REHEARSAL_CLUSTER_KILLS": str(args.kills),
           "REHEARSAL_QUOTA": str(args.quota)}
    if args.seed is not None:
        env["REHEARSAL_SEED"] = str(args.seed)
    return subprocess.run([sys.executable, "-m", "pytest", "tests/rehearsal", "-m", "rehearsal", "-s", "-q",
                           "-p", "no:randomly", "-W", "ignore::RuntimeWarning",
                           *(["--reuse-db"] if args.reuse_db else [])],
                          cwd=ROOT, env=env, timeout=args.seconds + 900).returncode


if __name__ == "__main__":
    sys.exit(main())
