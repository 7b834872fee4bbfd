"""A task whose own timeout is longer than the cluster's `retry` runs once, on a real cluster and both brokers.

PITFALLS.md: with django-q2's stock ORM broker a package comes back after the cluster's `retry` whatever the
task's timeout, so a task longer than `retry` runs twice. Our brokers lease each run's package for the run's own
timeout plus the lease grace (the ORM queue row's lease_seconds; on Redis no redelivery at all, the recovery
sweep going by the run's lease_until), so the cluster's `retry` bounds only plain packages. Here the cluster's
retry is 8 s and a run with a 20 s timeout sleeps 12 s: it must run once, never be redelivered or taken over.
This is what lets the rollout task (schemas.rollout) have a timeout longer than the cluster's retry.
"""

from __future__ import annotations

import time

import pytest

from tasks import actions
from tasks.models import Status, TaskRun
from tests.tasks.conftest import redis_available, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("broker", ["orm", "redis"])
def test_a_run_longer_than_the_clusters_retry_runs_once(cluster_factory, broker):
    if broker == "redis" and not redis_available():
        pytest.skip("No Redis")
    cluster = cluster_factory(broker=broker, workers=2, lease_grace=4, timeout=4, retry=8).start()
    run = actions.task_submit(name="system.sleep", arguments={"seconds": 12, "steps": 12}, timeout=20)
    started = wait_for(lambda: TaskRun.objects.filter(pk=run.pk, status=Status.RUNNING).first(), timeout=30,
                       message="the run to start")
    pid = started.worker_pid
    if broker == "orm":  # its package is leased for the run's 20 s + 4 s, not the cluster's 8 s retry
        from tasks.models import QueueMessage

        time.sleep(9)  # past the cluster's retry
        package = QueueMessage.objects.get(run_id=run.pk)
        assert (package.lease_seconds, package.deliveries) == (24, 1)
    done = wait_for(lambda: TaskRun.objects.filter(pk=run.pk, status__in=[Status.SUCCEEDED, Status.FAILED]).first(),
                    timeout=40, interval=0.2, message="the run to end")
    outcomes = list(done.attempt_log.values_list("outcome", "error"))
    assert (done.status, done.attempts, done.lost_attempts) == (Status.SUCCEEDED, 1, 0), (outcomes,
                                                                                          cluster.log_tail())
    assert done.result == {"slept": 12} and done.worker_pid == pid and len(outcomes) == 1
    assert b"Traceback" not in cluster.log_path.read_bytes(), cluster.log_tail()


def test_a_timeout_past_the_retry_is_refused_where_the_broker_is_not_ours(settings):
    """django-q2's own brokers redeliver after `retry`: there the bound stays."""
    from django.core.exceptions import ValidationError

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "broker_class": "django_q.brokers.orm.ORM", "retry": 360,
                          "lease_grace": 10}
    with pytest.raises(ValidationError, match="at most 350 s"):
        actions.task_submit(name="system.sleep", arguments={"seconds": 0}, timeout=400)


def test_the_rollout_task_gets_its_hour_on_our_brokers_and_the_brokers_most_elsewhere(settings):
    from schemas.tasks import ROLLOUT_TIMEOUT
    from tasks.actions.validate import build_run

    def default_timeout() -> int:
        return build_run(name="schemas.rollout", arguments={}, tenant=None, priority=None, max_retries=None,
                         timeout=None, backoff_base=None, backoff_cap=None, run_if_dependency_fails=False,
                         submitted_by="ops", schedule=None, eta=None).timeout

    assert ROLLOUT_TIMEOUT == 3600 and default_timeout() == 3600
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "broker_class": "django_q.brokers.orm.ORM", "retry": 360,
                          "lease_grace": 10}
    assert default_timeout() == 350  # the task's default cut to what that broker allows, not refused
