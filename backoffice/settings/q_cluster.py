"""django-q2 cluster settings."""

# base.py imports this module after defining env and REDIS_URL.
from .base import REDIS_URL, env

# django-q2. `retry` must exceed `timeout`, or a long task runs twice.
Q_CLUSTER = {
    "name": "courtside",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": 300,
    "retry": 360,
    "max_attempts": 1,
    "save_limit": 10000,
    "catch_up": False,
    "poll": 0.2,
    "orm": "default",
}
if REDIS_URL:
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = REDIS_URL

