"""Worker health in /metrics: workers alive per cluster, each live worker's heartbeat age and tasks done, and
the ends (recycled, stopped, lost), scraped and parsed with prometheus-client's own parser."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families


def _scrape(client) -> list:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content[:300]
    return [s for family in text_string_to_metric_families(response.content.decode()) for s in family.samples]


def _samples(samples, name, **labels):
    return [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def test_each_clusters_workers_show_their_liveness_in_the_metrics(db, operator_client):
    from tasks.models import WorkerProcess

    now = timezone.now()

    def worker(pid, cluster, beat_ago, **fields):
        return WorkerProcess.objects.create(host="node-a", pid=pid, cluster=cluster, name=f"Process-{pid}",
                                            started_at=now - dt.timedelta(minutes=5),
                                            last_heartbeat_at=now - dt.timedelta(seconds=beat_ago), **fields)

    worker(101, "default", 1, tasks_done=7)
    worker(102, "default", 2, tasks_done=3)
    worker(103, "default", 600)  # stopped heartbeating: running but not alive
    worker(201, "priority", 1, tasks_done=1)
    worker(90, "default", 900, tasks_done=500, ended_at=now, end=WorkerProcess.End.RECYCLED)
    worker(91, "default", 900, tasks_done=500, ended_at=now, end=WorkerProcess.End.RECYCLED)
    worker(92, "priority", 900, ended_at=now, end=WorkerProcess.End.LOST)

    samples = _scrape(operator_client)

    assert _samples(samples, "courtside_workers_alive", cluster="default")[0].value == 2
    assert _samples(samples, "courtside_workers_alive", cluster="priority")[0].value == 1
    ages = {s.labels["pid"]: s.value for s in _samples(samples, "courtside_worker_last_heartbeat_age_seconds")}
    assert set(ages) == {"101", "102", "103", "201"}  # ended workers leave no series behind
    assert 0 <= ages["101"] < 60 and ages["103"] >= 600
    done = {s.labels["pid"]: s.value for s in _samples(samples, "courtside_worker_tasks_done", cluster="default")}
    assert done == {"101": 7.0, "102": 3.0, "103": 0.0}
    assert _samples(samples, "courtside_worker_ends", cluster="default", end="recycled")[0].value == 2
    assert _samples(samples, "courtside_worker_ends", cluster="priority", end="lost")[0].value == 1

    WorkerProcess.objects.filter(pid=102).update(ended_at=now, end=WorkerProcess.End.RECYCLED)
    samples = _scrape(operator_client)
    assert _samples(samples, "courtside_workers_alive", cluster="default")[0].value == 1
    assert _samples(samples, "courtside_worker_ends", cluster="default", end="recycled")[0].value == 3


def test_a_tenant_site_has_no_worker_metrics(db, lakers_client):
    assert lakers_client.get("/metrics").status_code == 404
